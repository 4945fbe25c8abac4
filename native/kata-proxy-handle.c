/*
 * kata-proxy-handle: the per-pod process the Kata 1.x runtime starts, watches with kill(pid, 0)
 * and stops with SIGTERM, when the pods are served by `kata-proxy host` (README "Kata runtime
 * with host mode"). native/build.sh copies it to bin/kata-proxy-hosted, the runtime's [proxy.kata]
 * path, which so starts it without a shell.
 *
 * Usage: kata-proxy-handle [ARG...]     (ARG...: the runtime's argv)
 *
 * 1. Registers the pod: one frame on the control socket with the runtime's argv and the
 *    KATA_PROXY_* variables kata-proxy-hosted reads (src/host/native-registration.ts: no HTTP, the
 *    host's most frequent request, a fifth cheaper for it). The host reads the command line with the
 *    daemon's own option code (nothing is parsed here but where the host is: the -control-socket
 *    flag, by the rule of src/cli/hosted-args.ts) and answers "pod /pods/ID", or "usage" with the
 *    daemon's message (printed; status 2), "not-a-pod", or "refused STATUS CODE MESSAGE".
 *    When no host answers, or the command line is not a pod's (help, version, a subcommand:
 *    "not-a-pod"), the Node registration step decides instead, as `node
 *    PACKAGE/dist/src/hosted/register-step.js ARG...` with fd 3 on a pipe (PACKAGE: where this
 *    program is, PACKAGE/dist/native/kata-proxy-handle or PACKAGE/bin/kata-proxy-hosted), where
 *    it writes NUL-terminated fields:
 *      attach CONTROL-SOCKET POD-PATH   the pod is registered; POD-PATH is /pods/ID, URL-encoded
 *      exec PROGRAM ARG...              no host mode for this invocation: become PROGRAM
 *    or nothing (help, version, usage or registration error): exit with the step's status.
 *    So -fallback, -help and -version behave as bin/kata-proxy's, and need Node, as before.
 * 2. Holds the pod: the registration's connection goes on as its attach channel ("attached"),
 *    and the handle blocks in read() until the host writes "ended STATUS REASON": exit STATUS.
 *    When the connection ends without that line the host went away: reconnect (50 ms doubling
 *    to 1 s) and attach again with `GET POD-PATH/attach?pid=PID` (HTTP). 404 (pod unknown) or
 *    409 (another handle holds it): exit 1.
 *
 * SIGTERM/SIGINT keep their default action once attached: the kernel closes the connection at
 * once and the host stops the pod. Failures are logged to stderr, or to syslog when stderr is
 * /dev/null (as under the runtime).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

enum { EXIT_OK = 0, EXIT_FAILURE_ = 1, EXIT_USAGE = 2 };

static const char *pod_path = "";
static int use_syslog;
static volatile sig_atomic_t stop_signal;

static void say(const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (use_syslog)
		syslog(LOG_USER | LOG_ERR, "kata-proxy-handle%s%s: %s", *pod_path ? " " : "", pod_path, msg);
	else
		dprintf(2, "kata-proxy-handle[%d]%s%s: %s\n", (int)getpid(), *pod_path ? " " : "", pod_path, msg);
}

static int stderr_is_dev_null(void)
{
	struct stat err, null;
	if (fstat(2, &err) != 0)
		return 1;
	return stat("/dev/null", &null) == 0 && S_ISCHR(err.st_mode) && err.st_rdev == null.st_rdev;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static void remember_stop(int sig)
{
	stop_signal = sig;
}

/* Runs the registration step; returns its exit status and fills out/len with what it wrote on fd 3. */
static int run_step(char **argv, char *out, size_t cap, size_t *len)
{
	int pipefd[2];
	*len = 0;
	if (pipe2(pipefd, O_CLOEXEC) != 0) {
		say("pipe: %s", strerror(errno));
		return EXIT_FAILURE_;
	}
	pid_t child = fork();
	if (child < 0) {
		say("fork: %s", strerror(errno));
		return EXIT_FAILURE_;
	}
	if (child == 0) {
		if (pipefd[1] == 3)
			fcntl(3, F_SETFD, 0);
		else if (dup2(pipefd[1], 3) < 0)
			_exit(127);
		execvp(argv[0], argv);
		dprintf(2, "kata-proxy-handle: cannot run %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	close(pipefd[1]);
	for (;;) {
		ssize_t n = read(pipefd[0], out + *len, cap - *len);
		if (n > 0 && (*len += (size_t)n) < cap)
			continue;
		if (n < 0 && errno == EINTR)
			continue;
		break;
	}
	close(pipefd[0]);
	int status;
	while (waitpid(child, &status, 0) < 0)
		if (errno != EINTR)
			return EXIT_FAILURE_;
	if (*len == cap) {
		say("registration step wrote too much");
		return EXIT_FAILURE_;
	}
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* Splits NUL-terminated fields in place; returns their count (at most max). */
static int split_fields(char *buf, size_t len, char **fields, int max)
{
	int n = 0;
	for (size_t start = 0, i = 0; i < len && n < max; i++)
		if (buf[i] == '\0') {
			fields[n++] = buf + start;
			start = i + 1;
		}
	return n;
}

struct conn {
	int fd;
	char buf[4096];
	size_t len;
};

/* Reads until `delim` appears; returns the offset just past it, 0 on EOF/error/overflow. */
static size_t read_until(struct conn *c, const char *delim)
{
	size_t dl = strlen(delim);
	for (;;) {
		char *hit = memmem(c->buf, c->len, delim, dl);
		if (hit)
			return (size_t)(hit - c->buf) + dl;
		if (c->len == sizeof c->buf)
			return 0;
		ssize_t n = read(c->fd, c->buf + c->len, sizeof c->buf - c->len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return 0;
		c->len += (size_t)n;
	}
}

static void consume(struct conn *c, size_t n)
{
	memmove(c->buf, c->buf + n, c->len - n);
	c->len -= n;
}

static int connect_control(const char *socket_path)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	if (strlen(socket_path) >= sizeof addr.sun_path) {
		say("control socket path too long: %s", socket_path);
		exit(EXIT_FAILURE_);
	}
	strcpy(addr.sun_path, socket_path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

static int send_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static void send_all_fd(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		p += w;
		n -= (size_t)w;
	}
}

enum attach_result { LOST = -1, RETRY_LATER = -2 };

/*
 * One attach connection. Returns the pod's exit status when it ended, LOST when the connection
 * ended without an "ended" line (attached tells whether "attached" was seen), RETRY_LATER on 5xx.
 * With only_attach it returns as soon as "attached" is read.
 */
/* The connection of the attach channel, shared by registration (which starts it) and re-attaches. */
static struct conn c;

/* The attach channel's lines, after its head: see attach_once. */
static int attach_lines(int *attached, int only_attach)
{
	for (;;) {
		size_t line = read_until(&c, "\n");
		if (line == 0)
			return LOST;
		c.buf[line - 1] = '\0';
		if (line >= 2 && c.buf[line - 2] == '\r')
			c.buf[line - 2] = '\0';
		int status;
		if (strcmp(c.buf, "attached") == 0) {
			*attached = 1;
			if (only_attach)
				return LOST;
		} else if (sscanf(c.buf, "ended %d", &status) == 1)
			return status >= 0 && status <= 255 ? status : EXIT_FAILURE_;
		consume(&c, line); /* other lines are ignored (forward compatibility) */
	}
}

static int attach_once(int fd, int *attached, int only_attach)
{
	char request[1024];
	c.fd = fd;
	c.len = 0;
	*attached = 0;
	int n = snprintf(request, sizeof request,
			 "GET %s/attach?pid=%d HTTP/1.1\r\nHost: kata-proxy\r\nConnection: close\r\n\r\n", pod_path,
			 (int)getpid());
	if (n <= 0 || (size_t)n >= sizeof request || send_all(fd, request, (size_t)n) != 0)
		return LOST;
	size_t head = read_until(&c, "\r\n\r\n");
	if (head == 0)
		return LOST;
	int code = 0;
	if (sscanf(c.buf, "HTTP/1.%*d %d", &code) != 1)
		code = 0;
	if (code != 200) {
		if (code >= 500)
			return RETRY_LATER;
		say("attach refused by the host: HTTP %d%s", code,
		    code == 404 ? " (the host does not know this pod)" : code == 409 ? " (another handle holds this pod)" : "");
		return EXIT_FAILURE_;
	}
	consume(&c, head);
	return attach_lines(attached, only_attach);
}

/* Holds the pod: `registered` is the registration's connection, already attached (or -1). */
static int attach_loop(const char *socket_path, int registered)
{
	long backoff_ms = 50;
	int outage_logged = 0;
	for (;;) {
		int fd = registered >= 0 ? registered : connect_control(socket_path);
		if (fd < 0) {
			if (!outage_logged++)
				say("cannot reach the host on %s (%s); retrying until it is back", socket_path, strerror(errno));
		} else {
			int attached = 0;
			int r = registered >= 0 ? attach_lines(&attached, 0) : attach_once(fd, &attached, 0);
			registered = -1;
			close(fd);
			if (r >= 0)
				return r;
			if (attached) {
				backoff_ms = 50;
				outage_logged = 0;
			}
			if (!outage_logged++)
				say(r == RETRY_LATER ? "the host answered the attach with a server error; retrying"
						     : "lost the host connection; re-attaching when the host is back");
		}
		sleep_ms(backoff_ms);
		backoff_ms = backoff_ms * 2 > 1000 ? 1000 : backoff_ms * 2;
	}
}

/* A stop signal that arrived while the pod was being registered: attach once so the host sees the
 * handle go (and stops the pod), then end by that signal. */
static void stop_registered(const char *socket_path)
{
	int fd = connect_control(socket_path);
	if (fd >= 0) {
		int attached;
		attach_once(fd, &attached, 1);
		close(fd);
	}
}

/* ---- registration: the runtime's argv to the host ----------------------------------------- */

#define DEFAULT_CONTROL_SOCKET "/run/kata-proxy/host.sock"
#define HOST_ANSWER_TIMEOUT_S 15 /* the runtime's gRPC dial gives up after 15 s */

/* The host's control socket: the rule of src/cli/hosted-args.ts (-control-socket PATH,
 * --control-socket=PATH anywhere before "--", else $KATA_PROXY_CONTROL_SOCKET, else the
 * default). NULL when the flag has no value: the Node step reports that usage error. */
static const char *control_socket_of(int argc, char **argv)
{
	const char *found = NULL;
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--") == 0)
			break;
		const char *name = a[0] == '-' ? a + 1 + (a[1] == '-') : NULL;
		if (!name || strncmp(name, "control-socket", 14) != 0 || (name[14] != '\0' && name[14] != '='))
			continue;
		found = name[14] == '=' ? name + 15 : i + 1 < argc ? argv[++i] : "";
		if (*found == '\0')
			return NULL;
	}
	if (found)
		return found;
	const char *env = getenv("KATA_PROXY_CONTROL_SOCKET");
	return env && *env ? env : DEFAULT_CONTROL_SOCKET;
}

struct buf {
	char *p;
	size_t len, cap;
};

static void put(struct buf *b, const char *s, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 1024;
		while (cap < b->len + n + 1)
			cap *= 2;
		char *p = realloc(b->p, cap);
		if (!p) {
			say("out of memory");
			exit(EXIT_FAILURE_);
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

/* The registration frame of src/host/native-registration.ts: NUL, then NUL-terminated fields
 * "kata-proxy-register 1" PID ARGC ARG... NAME=VALUE... and an empty field. */
static void registration_frame(struct buf *b, int argc, char **argv)
{
	static const char *const env_names[] = { "KATA_PROXY_CONTROL_SOCKET", "KATA_PROXY_HOSTED_FALLBACK" };
	char numbers[64];
	int n = snprintf(numbers, sizeof numbers, "%c%d%c%d%c", 0, (int)getpid(), 0, argc, 0);
	put(b, "\0kata-proxy-register 1", 22);
	put(b, numbers, (size_t)n);
	for (int i = 0; i < argc; i++)
		put(b, argv[i], strlen(argv[i]) + 1);
	for (size_t i = 0; i < sizeof env_names / sizeof env_names[0]; i++) {
		const char *v = getenv(env_names[i]);
		if (!v)
			continue;
		put(b, env_names[i], strlen(env_names[i]));
		put(b, "=", 1);
		put(b, v, strlen(v) + 1);
	}
	put(b, "", 1);
}

enum registration { REG_ATTACH = -1, REG_NODE_STEP = -2 };

/*
 * Sends the registration frame. Returns REG_ATTACH (pod_path set, and *attach_fd the connection,
 * which goes on as the pod's attach channel), REG_NODE_STEP (no host answers, or not a pod's
 * command line: the Node step decides), or a status to exit with (what to say was said).
 */
static int register_with_host(const char *socket_path, int argc, char **argv, char *pod_path_out, size_t pod_path_cap, int *attach_fd)
{
	struct sockaddr_un addr;
	if (strlen(socket_path) >= sizeof addr.sun_path)
		return REG_NODE_STEP;
	int fd = connect_control(socket_path);
	if (fd < 0)
		return REG_NODE_STEP;
	struct timeval timeout = { HOST_ANSWER_TIMEOUT_S, 0 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);

	struct buf frame = { 0 };
	registration_frame(&frame, argc, argv);
	int sent = send_all(fd, frame.p, frame.len);
	int send_errno = errno;
	free(frame.p);
	c.fd = fd;
	c.len = 0;
	size_t line = sent == 0 ? read_until(&c, "\n") : 0;
	if (line == 0) {
		say("cannot register the pod with the kata-proxy host on %s: %s", socket_path,
		    sent != 0 ? strerror(send_errno) : errno == EAGAIN ? "no answer within 15 s" : "the host closed the connection before answering");
		close(fd);
		return EXIT_FAILURE_;
	}
	c.buf[line - 1] = '\0';
	if (strncmp(c.buf, "pod /pods/", 10) == 0 && line - 5 < pod_path_cap) {
		memcpy(pod_path_out, c.buf + 4, line - 4); /* with its NUL */
		consume(&c, line);
		struct timeval none = { 0, 0 }; /* registered: wait for "ended" as long as the pod lives */
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &none, sizeof none);
		*attach_fd = fd;
		return REG_ATTACH;
	}
	int result = EXIT_FAILURE_;
	if (strcmp(c.buf, "not-a-pod") == 0) {
		result = REG_NODE_STEP;
	} else if (strcmp(c.buf, "usage") == 0) {
		/* The daemon's usage message, to the end of the connection. */
		send_all_fd(2, c.buf + line, c.len - line);
		for (ssize_t got; (got = read(fd, c.buf, sizeof c.buf)) != 0;) {
			if (got < 0 && errno == EINTR)
				continue; /* a stop signal: remembered, acted on once the answer is in */
			if (got < 0)
				break;
			send_all_fd(2, c.buf, (size_t)got);
		}
		result = EXIT_USAGE;
	} else {
		say("the kata-proxy host refused the pod: %s", strncmp(c.buf, "refused ", 8) == 0 ? c.buf + 8 : c.buf);
	}
	close(fd);
	return result;
}

/* `node PACKAGE/dist/src/hosted/register-step.js ARG...`, the package found from this binary's
 * own path: PACKAGE/dist/native/kata-proxy-handle, or its copy PACKAGE/bin/kata-proxy-hosted
 * (native/build.sh); node from PATH. */
static int run_node_step(int argc, char **argv, char *out, size_t cap, size_t *len)
{
	static const char *const self_paths[] = { "/dist/native/kata-proxy-handle", "/bin/kata-proxy-hosted" };
	static char script[4096];
	ssize_t n = readlink("/proc/self/exe", script, sizeof script - 64);
	size_t root = 0;
	for (size_t i = 0; i < sizeof self_paths / sizeof self_paths[0] && root == 0; i++) {
		size_t tail = strlen(self_paths[i]);
		if (n > (ssize_t)tail && memcmp(script + n - tail, self_paths[i], tail) == 0)
			root = (size_t)n - tail;
	}
	if (root == 0) {
		say("cannot find the kata-proxy package from this program's path (expected .../dist/native/kata-proxy-handle or .../bin/kata-proxy-hosted)");
		return EXIT_FAILURE_;
	}
	strcpy(script + root, "/dist/src/hosted/register-step.js");
	char **step = calloc((size_t)argc + 3, sizeof *step);
	if (!step) {
		say("out of memory");
		return EXIT_FAILURE_;
	}
	step[0] = "node";
	step[1] = script;
	memcpy(step + 2, argv, (size_t)argc * sizeof *step);
	int status = run_step(step, out, cap, len);
	free(step);
	return status;
}

static sigset_t stop_signals;

static void die_by(int sig)
{
	signal(sig, SIG_DFL);
	raise(sig);
	sigprocmask(SIG_UNBLOCK, &stop_signals, NULL);
	_exit(128 + sig);
}

int main(int argc, char **argv)
{
	use_syslog = stderr_is_dev_null();
	if (use_syslog)
		openlog("kata-proxy", LOG_PID, LOG_USER);

	/* While the pod is being registered, a stop request is remembered and honoured right after. */
	struct sigaction sa = { .sa_handler = remember_stop };
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	static char out[16384];
	static char registered_path[1024];
	char *fields[256];
	int nf = 0;
	size_t len = 0;
	int status = REG_NODE_STEP;
	int registered = -1;
	const char *socket_path = control_socket_of(argc - 1, argv + 1);
	if (socket_path)
		status = register_with_host(socket_path, argc - 1, argv + 1, registered_path, sizeof registered_path, &registered);
	if (status == REG_ATTACH) {
		fields[nf++] = "attach";
		fields[nf++] = (char *)socket_path;
		fields[nf++] = registered_path;
	} else if (status == REG_NODE_STEP) {
		status = run_node_step(argc - 1, argv + 1, out, sizeof out, &len);
		nf = split_fields(out, len, fields, 255);
	}
	fields[nf] = NULL;

	/* From here on SIGTERM/SIGINT have their default action again; one that came earlier is acted on now. */
	sigemptyset(&stop_signals);
	sigaddset(&stop_signals, SIGTERM);
	sigaddset(&stop_signals, SIGINT);
	sigprocmask(SIG_BLOCK, &stop_signals, NULL);
	signal(SIGTERM, SIG_DFL);
	signal(SIGINT, SIG_DFL);
	int attach = nf == 3 && strcmp(fields[0], "attach") == 0;
	if (attach)
		pod_path = fields[2];
	if (stop_signal) {
		if (registered >= 0)
			close(registered); /* the host sees its handle go, and stops the pod */
		else if (attach)
			stop_registered(fields[1]);
		die_by(stop_signal);
	}
	sigprocmask(SIG_UNBLOCK, &stop_signals, NULL);

	if (nf >= 2 && strcmp(fields[0], "exec") == 0) {
		execv(fields[1], fields + 1);
		say("cannot run %s: %s", fields[1], strerror(errno));
		return EXIT_FAILURE_;
	}
	if (!attach)
		return status == 0 && len > 0 ? EXIT_FAILURE_ : status;
	return attach_loop(fields[1], registered);
}
