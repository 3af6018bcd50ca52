/* DESIGN: dropping privileges (see privdrop.h for the sequence).
 *
 * Runs on the main thread during start-up, once. The user switch uses
 * setgroups/setgid/setuid, which glibc applies to every thread; leaving
 * uid 0 clears the capabilities of every thread except the caller, which
 * set PR_SET_KEEPCAPS. Capabilities are per thread, so threads that exist
 * already (the signal thread, the scrape server's threads) are asked with a
 * real-time signal to clear their own sets; the caller waits for each
 * (bounded) and fails if one does not answer. Raw capget/capset syscalls:
 * no libcap dependency for five calls. */
#define _GNU_SOURCE
#include "promacct/privdrop.h"

#include <dirent.h>
#include <errno.h>
#include <grp.h>
#include <linux/capability.h>
#include <pwd.h>
#include <semaphore.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "promacct/log.h"

/* Sanitizer runtimes run threads of their own (ThreadSanitizer's
 * background thread) that inherit capabilities but block every signal:
 * in such builds a thread that does not answer is logged, not fatal. In a
 * release build every thread is ours and must answer. */
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define SANITIZER_BUILD 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
#define SANITIZER_BUILD 1
#endif
#endif
#ifndef SANITIZER_BUILD
#define SANITIZER_BUILD 0
#endif

#define DROP_SIGNAL    (SIGRTMIN + 3)
#define ANSWER_SECONDS 2 /* per thread, to clear its capabilities */
#define NAME_BUF       4096

static int caps_set(uint64_t keep)
{
	struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
	struct __user_cap_data_struct d[2];
	memset(d, 0, sizeof d);
	d[0].permitted = d[0].effective = (uint32_t)keep;
	d[1].permitted = d[1].effective = (uint32_t)(keep >> 32);
	return (int)syscall(SYS_capset, &h, d);
}

static uint64_t caps_permitted(void)
{
	struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
	struct __user_cap_data_struct d[2];
	memset(d, 0, sizeof d);
	if (syscall(SYS_capget, &h, d))
		return 0;
	return (uint64_t)d[1].permitted << 32 | d[0].permitted;
}

/* Async-signal-safe: raw syscalls only. */
static sem_t answered;
static volatile sig_atomic_t handler_failed;

static void clear_own(void)
{
	(void)prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
	if (caps_set(0))
		handler_failed = 1;
	(void)prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
}

static void on_drop_signal(int sig)
{
	(void)sig;
	int saved = errno;
	clear_own();
	sem_post(&answered);
	errno = saved;
}

/* Nonzero when thread tid holds any capability (permitted or effective). */
static int thread_has_caps(pid_t tid)
{
	char path[64], line[256];
	unsigned long long acc = 0, v;
	int seen = 0;
	snprintf(path, sizeof path, "/proc/self/task/%d/status", (int)tid);
	FILE *f = fopen(path, "r");
	if (!f)
		return 0; /* it ended */
	while (fgets(line, sizeof line, f))
		if (sscanf(line, "CapPrm: %llx", &v) == 1 ||
		    sscanf(line, "CapEff: %llx", &v) == 1) {
			acc |= v;
			seen++;
		}
	fclose(f);
	return seen ? acc != 0 : 1; /* unknown: ask it */
}

/* Asks every other thread of the process that holds a capability to clear
 * its own, and waits for each. */
static int clear_other_threads(char *err, size_t errlen)
{
	pid_t self = (pid_t)syscall(SYS_gettid);
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_drop_signal;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	/* The handler stays installed: a thread that had the signal blocked
	 * may take it later, and its default action would end the process. */
	if (sem_init(&answered, 0, 0) || sigaction(DROP_SIGNAL, &sa, NULL)) {
		snprintf(err, errlen, "cannot drop capabilities: %s", strerror(errno));
		return -errno;
	}
	int rc = 0;
	DIR *d = opendir("/proc/self/task");
	if (!d) {
		rc = -errno;
		snprintf(err, errlen, "cannot list threads: %s", strerror(errno));
		goto out;
	}
	struct dirent *e;
	while ((e = readdir(d))) {
		pid_t tid = (pid_t)atoi(e->d_name);
		if (tid <= 0 || tid == self || !thread_has_caps(tid))
			continue;
		if (syscall(SYS_tgkill, getpid(), tid, DROP_SIGNAL)) {
			if (errno == ESRCH)
				continue; /* it ended meanwhile */
			rc = -errno;
			snprintf(err, errlen, "cannot signal thread %d: %s", (int)tid,
			         strerror(errno));
			break;
		}
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += ANSWER_SECONDS;
		while (sem_timedwait(&answered, &until)) {
			if (errno == EINTR)
				continue;
			if (SANITIZER_BUILD) {
				log_warn("a thread did not clear its capabilities (a sanitizer "
				         "runtime's own thread)",
				         "tid=%d", (int)tid);
				break;
			}
			rc = -ETIMEDOUT;
			snprintf(err, errlen, "thread %d did not clear its capabilities", (int)tid);
			break;
		}
		if (rc)
			break;
	}
	closedir(d);
	if (!rc && handler_failed) {
		rc = -EPERM;
		snprintf(err, errlen, "a thread could not clear its capabilities");
	}
out:
	return rc;
}

int privdrop_resolve(const struct privdrop_opts *o, struct privdrop *pd, char *err, size_t errlen)
{
	memset(pd, 0, sizeof *pd);
	pd->opts = *o;
	if (!o->user && !o->group)
		return 0;
	char *buf = malloc(NAME_BUF);
	if (!buf) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	int rc = 0;
	pd->uid = getuid();
	pd->gid = getgid();
	if (o->user) {
		struct passwd pw, *res = NULL;
		char *end;
		unsigned long n = strtoul(o->user, &end, 10);
		if (getpwnam_r(o->user, &pw, buf, NAME_BUF, &res) == 0 && res) {
			pd->uid = pw.pw_uid;
			pd->gid = pw.pw_gid;
		} else if (*o->user && !*end) {
			pd->uid = (uid_t)n;
			if (getpwuid_r(pd->uid, &pw, buf, NAME_BUF, &res) == 0 && res)
				pd->gid = pw.pw_gid;
		} else {
			snprintf(err, errlen, "--user: unknown user '%s'", o->user);
			rc = -EINVAL;
			goto out;
		}
	}
	if (o->group) {
		struct group gr, *res = NULL;
		char *end;
		unsigned long n = strtoul(o->group, &end, 10);
		if (getgrnam_r(o->group, &gr, buf, NAME_BUF, &res) == 0 && res) {
			pd->gid = gr.gr_gid;
		} else if (*o->group && !*end) {
			pd->gid = (gid_t)n;
		} else {
			snprintf(err, errlen, "--group: unknown group '%s'", o->group);
			rc = -EINVAL;
			goto out;
		}
	}
	pd->switch_user = 1;
out:
	free(buf);
	return rc;
}

int privdrop_apply(const struct privdrop *pd, char *err, size_t errlen)
{
	uint64_t keep = pd->opts.keep_net_raw ? 1ull << CAP_NET_RAW : 0;
	if (!pd->switch_user && geteuid() == 0)
		return 0; /* root stays root without --user (documented) */
	if (pd->switch_user) {
		if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) || setgroups(1, &pd->gid) ||
		    setgid(pd->gid) || setuid(pd->uid)) {
			int e = errno;
			snprintf(err, errlen,
			         "cannot switch to user %u group %u: %s (run as root, or without "
			         "--user)",
			         (unsigned)pd->uid, (unsigned)pd->gid, strerror(e));
			return -e;
		}
		(void)prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0);
		if (getuid() != pd->uid || geteuid() != pd->uid || getgid() != pd->gid) {
			snprintf(err, errlen, "user switch did not take effect");
			return -EPERM;
		}
	}
	/* Only what this thread has can be kept. */
	keep &= caps_permitted();
	(void)prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
	if (caps_set(keep)) {
		int e = errno;
		snprintf(err, errlen, "cannot drop capabilities: %s", strerror(e));
		return -e;
	}
	(void)prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
	int rc = clear_other_threads(err, errlen);
	if (!rc)
		log_info("privileges dropped", "uid=%u gid=%u capabilities=%s", (unsigned)getuid(),
		         (unsigned)getgid(), keep ? "CAP_NET_RAW (capture threads)" : "none");
	return rc;
}

void privdrop_finish(void)
{
	(void)caps_set(0);
}
