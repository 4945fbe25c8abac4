/*
 * kata-proxy-handle: the per-pod process the Kata 1.x runtime starts, watches with kill(pid, 0)
 * and stops with SIGTERM, when the pods are served by `kata-proxy host` (README "Kata runtime
 * with host mode"). bin/kata-proxy-hosted execs it, so it keeps the pid the runtime spawned.
 *
 * Usage: kata-proxy-handle REGISTER-PROGRAM [ARG...]
 *
 * 1. Runs the registration step (a short Node program) with fd 3 on a pipe. The step writes
 *    NUL-terminated fields there:
 *      attach CONTROL-SOCKET POD-PATH   the pod is registered; POD-PATH is /pods/ID, URL-encoded
 *      exec PROGRAM ARG...              no host mode for this invocation: become PROGRAM
 *    or nothing (help, version, usage or registration error): exit with the step's status.
 * 2. Attaches: `GET POD-PATH/attach?pid=PID` on the control socket, reads "attached", then
 *    blocks in read() until the host writes "ended STATUS REASON": exit STATUS. When the
 *    connection ends without that line the host went away: reconnect (50 ms doubling to 1 s)
 *    and attach again. 404 (pod unknown) or 409 (another handle holds it): exit 1.
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
		syslog(LOG_USER | LOG_ERR, "kata-proxy-handle %s: %s", pod_path, msg);
	else
		dprintf(2, "kata-proxy-handle[%d] %s: %s\n", (int)getpid(), pod_path, msg);
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

enum attach_result { LOST = -1, RETRY_LATER = -2 };

/*
 * One attach connection. Returns the pod's exit status when it ended, LOST when the connection
 * ended without an "ended" line (attached tells whether "attached" was seen), RETRY_LATER on 5xx.
 * With only_attach it returns as soon as "attached" is read.
 */
static int attach_once(int fd, int *attached, int only_attach)
{
	static struct conn c;
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

static int attach_loop(const char *socket_path)
{
	long backoff_ms = 50;
	int outage_logged = 0;
	for (;;) {
		int fd = connect_control(socket_path);
		if (fd < 0) {
			if (!outage_logged++)
				say("cannot reach the host on %s (%s); retrying until it is back", socket_path, strerror(errno));
		} else {
			int attached;
			int r = attach_once(fd, &attached, 0);
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
	if (argc < 2) {
		dprintf(2, "usage: kata-proxy-handle REGISTER-PROGRAM [ARG...] (started by bin/kata-proxy-hosted)\n");
		return EXIT_USAGE;
	}
	use_syslog = stderr_is_dev_null();
	if (use_syslog)
		openlog("kata-proxy", LOG_PID, LOG_USER);

	/* While the pod is being registered, a stop request is remembered and honoured right after. */
	struct sigaction sa = { .sa_handler = remember_stop };
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	static char out[16384];
	size_t len = 0;
	int status = run_step(argv + 1, out, sizeof out, &len);
	char *fields[256];
	int nf = split_fields(out, len, fields, 255);
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
		if (attach)
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
	return attach_loop(fields[1]);
}
