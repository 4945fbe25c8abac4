/*
 * A Node add-on with one function, trim(): glibc's malloc_trim(0), which gives back to the kernel
 * every whole free page of the C heap, not only its top. The host calls it after the ended pods'
 * memory is collected: a bulk transfer leaves the heap a patchwork of freed 64 KiB read buffers
 * between live chunks, which glibc never returns by itself (tens of MiB kept per busy pod).
 *
 * Node-API is a stable C ABI, the same from Node 20 to 26: the few declarations it needs are
 * written here, so the add-on builds with a plain C compiler and no Node headers, and one build
 * loads in every Node line. Its symbols resolve against the node binary when it is loaded.
 */
#include <malloc.h>

typedef struct napi_env__ *napi_env;
typedef struct napi_value__ *napi_value;
typedef struct napi_callback_info__ *napi_callback_info;
typedef int napi_status;
typedef napi_value (*napi_callback)(napi_env env, napi_callback_info info);

extern napi_status napi_create_function(napi_env env, const char *name, unsigned long length,
                                        napi_callback cb, void *data, napi_value *result);
extern napi_status napi_set_named_property(napi_env env, napi_value object, const char *name,
                                           napi_value value);
extern napi_status napi_get_boolean(napi_env env, _Bool value, napi_value *result);

#define NAPI_AUTO_LENGTH ((unsigned long)-1)

/* true when some memory went back to the kernel. */
static napi_value trim(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value released;
  if (napi_get_boolean(env, malloc_trim(0) != 0, &released) != 0) return 0;
  return released;
}

__attribute__((visibility("default"))) napi_value napi_register_module_v1(napi_env env, napi_value exports) {
  napi_value fn;
  if (napi_create_function(env, "trim", NAPI_AUTO_LENGTH, trim, 0, &fn) == 0)
    napi_set_named_property(env, exports, "trim", fn);
  return exports;
}
