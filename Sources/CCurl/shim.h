#ifndef GRAPH_BRIDGE_CCURL_SHIM_H
#define GRAPH_BRIDGE_CCURL_SHIM_H

/*
 * CURL_STRICTER makes CURL and CURLM distinct opaque structs instead of `void`, so Swift
 * sees them as OpaquePointer and a multi handle can't be passed where an easy one belongs.
 */
#ifndef CURL_STRICTER
#define CURL_STRICTER
#endif
#include <curl/curl.h>

/*
 * curl_easy_setopt, curl_easy_getinfo and curl_multi_setopt are variadic and Swift can't call
 * them. These typed wrappers fix the argument type per option family; libcurl reads exactly one
 * argument of that type. Pick the wrapper whose type curl's documentation gives for the option.
 */

/* CURLOPTTYPE_LONG, CURLOPTTYPE_VALUES */
static inline CURLcode ccurl_easy_setopt_long(CURL *handle, CURLoption option, long value) {
    return curl_easy_setopt(handle, option, value);
}

/* CURLOPTTYPE_OFF_T (the *_LARGE options) */
static inline CURLcode ccurl_easy_setopt_off_t(CURL *handle, CURLoption option, curl_off_t value) {
    return curl_easy_setopt(handle, option, value);
}

/* CURLOPTTYPE_STRINGPOINT: libcurl copies the string (except CURLOPT_POSTFIELDS); NULL resets. */
static inline CURLcode ccurl_easy_setopt_string(CURL *handle, CURLoption option, const char *value) {
    return curl_easy_setopt(handle, option, value);
}

/* CURLOPTTYPE_OBJECTPOINT / CBPOINT: userdata, CURLOPT_PRIVATE, CURLOPT_ERRORBUFFER, ... */
static inline CURLcode ccurl_easy_setopt_pointer(CURL *handle, CURLoption option, void *value) {
    return curl_easy_setopt(handle, option, value);
}

/* CURLOPTTYPE_SLISTPOINT: the list must stay alive until the transfer is done. */
static inline CURLcode ccurl_easy_setopt_slist(CURL *handle, CURLoption option, struct curl_slist *value) {
    return curl_easy_setopt(handle, option, value);
}

/* CURLOPT_WRITEFUNCTION, CURLOPT_HEADERFUNCTION */
static inline CURLcode ccurl_easy_setopt_write_callback(CURL *handle, CURLoption option,
                                                        curl_write_callback value) {
    return curl_easy_setopt(handle, option, value);
}

/* CURLOPT_READFUNCTION (uploads, SMTP message bodies) */
static inline CURLcode ccurl_easy_setopt_read_callback(CURL *handle, CURLoption option,
                                                       curl_read_callback value) {
    return curl_easy_setopt(handle, option, value);
}

/* CURLINFO_LONG */
static inline CURLcode ccurl_easy_getinfo_long(CURL *handle, CURLINFO info, long *value) {
    return curl_easy_getinfo(handle, info, value);
}

/* CURLINFO_OFF_T */
static inline CURLcode ccurl_easy_getinfo_off_t(CURL *handle, CURLINFO info, curl_off_t *value) {
    return curl_easy_getinfo(handle, info, value);
}

/* CURLINFO_STRING: the string belongs to the handle. */
static inline CURLcode ccurl_easy_getinfo_string(CURL *handle, CURLINFO info, const char **value) {
    return curl_easy_getinfo(handle, info, value);
}

/* CURLINFO_PRIVATE (documented as char *, set as any pointer) */
static inline CURLcode ccurl_easy_getinfo_pointer(CURL *handle, CURLINFO info, void **value) {
    return curl_easy_getinfo(handle, info, value);
}

/* CURLMOPT_* taking a long */
static inline CURLMcode ccurl_multi_setopt_long(CURLM *handle, CURLMoption option, long value) {
    return curl_multi_setopt(handle, option, value);
}

/* CURL_GLOBAL_DEFAULT is a macro expression Swift does not import. */
static inline CURLcode ccurl_global_init_default(void) {
    return curl_global_init(CURL_GLOBAL_DEFAULT);
}

/*
 * Names the calling thread (at most 15 bytes are kept) for `top -H`, `perf` and `gdb`; prctl is
 * variadic, so Swift can't call it. The transfer thread would otherwise carry its creator's name.
 */
#include <sys/prctl.h>
static inline void ccurl_name_this_thread(const char *name) {
    (void)prctl(PR_SET_NAME, name, 0, 0, 0);
}

#endif
