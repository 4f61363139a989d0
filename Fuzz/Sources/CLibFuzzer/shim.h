#ifndef GRAPH_BRIDGE_FUZZ_CLIBFUZZER_SHIM_H
#define GRAPH_BRIDGE_FUZZ_CLIBFUZZER_SHIM_H
// libFuzzer's driver, linked in by -sanitize=fuzzer (clang_rt.fuzzer). Headers only: nothing to link here.
#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));
#endif
