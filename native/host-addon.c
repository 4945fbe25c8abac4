/*
 * The host's Node add-on, two functions:
 *
 * trim(): glibc's malloc_trim(0), which gives back to the kernel every whole free page of the C
 * heap, not only its top. The host calls it after the ended pods' memory is collected: a bulk
 * transfer leaves the heap a patchwork of freed 64 KiB read buffers between live chunks, which
 * glibc never returns by itself (tens of MiB kept per busy pod).
 *
 * dup(fd): a second descriptor of the same socket (close-on-exec), or -errno. Pods run on worker
 * threads, whose sockets are descriptors of this same process: a reload passes a copy of one to
 * the next host, and a pod that moves between threads takes copies, while the thread that had it
 * closes its own. Node has no dup of its own.
 *
 * Node-API is a stable C ABI, the same from Node 20 to 26: the few declarations it needs are
 * written here, so the add-on builds with a plain C compiler and no Node headers, and one build
 * loads in every Node line (and in worker threads). Its symbols resolve against the node binary.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
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
extern napi_status napi_get_cb_info(napi_env env, napi_callback_info info, unsigned long *argc,
                                    napi_value *argv, napi_value *this_arg, void **data);
extern napi_status napi_get_value_int32(napi_env env, napi_value value, int *result);
extern napi_status napi_create_int32(napi_env env, int value, napi_value *result);

#define NAPI_AUTO_LENGTH ((unsigned long)-1)

/* true when some memory went back to the kernel. */
static napi_value trim(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value released;
  if (napi_get_boolean(env, malloc_trim(0) != 0, &released) != 0) return 0;
  return released;
}

static napi_value dup_fd(napi_env env, napi_callback_info info) {
  unsigned long argc = 1;
  napi_value argv[1];
  int fd = -1;
  napi_value result;
  if (napi_get_cb_info(env, info, &argc, argv, 0, 0) != 0 || argc < 1) return 0;
  if (napi_get_value_int32(env, argv[0], &fd) != 0) fd = -1;
  int copy = fd < 0 ? -EBADF : fcntl(fd, F_DUPFD_CLOEXEC, 3);
  if (copy < 0 && fd >= 0) copy = -errno;
  if (napi_create_int32(env, copy, &result) != 0) return 0;
  return result;
}

static void export_function(napi_env env, napi_value exports, const char *name, napi_callback cb) {
  napi_value fn;
  if (napi_create_function(env, name, NAPI_AUTO_LENGTH, cb, 0, &fn) == 0)
    napi_set_named_property(env, exports, name, fn);
}

__attribute__((visibility("default"))) napi_value napi_register_module_v1(napi_env env, napi_value exports) {
  export_function(env, exports, "trim", trim);
  export_function(env, exports, "dup", dup_fd);
  return exports;
}
