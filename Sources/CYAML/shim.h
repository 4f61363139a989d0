#ifndef GRAPH_BRIDGE_CYAML_SHIM_H
#define GRAPH_BRIDGE_CYAML_SHIM_H
#include <yaml.h>
#endif
