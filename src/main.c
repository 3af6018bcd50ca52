/* DESIGN: process start-up, signal handling and shutdown.
 *
 * main() runs in two phases.
 *  (a) Make and start everything: parse the command line, map it to each
 *      module's options struct (modules never see struct config), create
 *      every module (X_new: validation, allocation, self-metrics; no thread,
 *      no traffic), then start them in an order where the start-ups that
 *      can fail for outside reasons (the listening socket, capture handles)
 *      come before the ones with outside effects (pushes, remote writes).
 *      If anything fails, what was made is freed (X_free) with no graceful
 *      side effects: no final push, no DELETE, no stale markers. Exit 1.
 *  (b) Run: wait for a signal; then shut every module down with one
 *      monotonic deadline (X_shutdown: graceful work only in modules whose
 *      start succeeded, every wait bounded by the deadline), then free.
 *
 * Signals: SIGINT, SIGTERM and SIGHUP are blocked in every thread (the mask
 * is set before the first thread starts) and taken by sigwait on a
 * dedicated thread, which posts the request to the main thread; shutdown
 * and reload are ordinary code, not signal-handler code. SIGHUP never ends
 * the agent: it asks for a reload (agent_reload, on the main thread). A
 * second SIGINT/SIGTERM during the shutdown exits at once (status 1). */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "promacct/buf.h"
#include "promacct/capture.h"
#include "promacct/config.h"
#include "promacct/expo_text.h"
#include "promacct/http_server.h"
#include "promacct/log.h"
#include "promacct/privdrop.h"
#include "promacct/pushgateway.h"
#include "promacct/registry.h"
#include "promacct/remote_write.h"
#include "promacct/status_page.h"
#include "promacct/timer.h"

#define ERR_MAX 1024
/* The shutdown deadline is the longest timeout of the outputs in use, and
 * at least this long (capture threads and the scrape page stop in well
 * under a second). */
#define SHUTDOWN_MIN_SECONDS 1.0
/* A second SIGINT/SIGTERM sooner than this after the first is the same
 * request, not an operator's second one (timeout(1) signals the process
 * and its group: twice within microseconds). */
#define SIGNAL_REPEAT_SECONDS 0.5

/* Requests from the signal thread (or any other thread) to the main
 * thread, under req_lock. */
static pthread_mutex_t req_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t req_cond = PTHREAD_COND_INITIALIZER;
static int req_shutdown_signal;    /* SIGINT / SIGTERM received */
static int req_reload;             /* reloads asked for and not yet done */
static int req_no_source;          /* no capture source is left for good */
static int req_signal_thread_quit; /* main is done: the signal thread returns */
static int req_closed;             /* agent_run returned: no reload runs any more */
static struct capture *the_capture;
/* Set before the signal thread starts, cleared after it ended: the signal
 * thread may ask the --once outputs to stop. */
static struct agent *the_agent;

/* Ranges tables replaced by reloads and not freed yet (a capture thread
 * may still use them): a reload waits RETIRE_WAIT for the threads; if more
 * than RETIRED_MAX are left behind it fails. */
#define RETIRED_MAX 16
#define RETIRE_WAIT 1.0

/* Everything the agent made; zeroed means "not made". */
struct agent {
	struct config cfg;
	struct registry reg;
	int reg_ok;
	struct capture *cap;
	struct http_server *http;
	struct status_page *status; /* the page at / (with the scrape page) */
	struct pushgateway *push;
	struct remote_write *rw;
	struct privdrop priv; /* --user, --group, capabilities */
	/* Prometheus' reload metrics (not with --once: nothing reloads). */
	gauge_t *reload_ok, *reload_ts;
	/* The ranges table a reload published (owned), NULL while it is
	 * cfg.ranges; the tables it replaced, each freed once no capture
	 * thread uses it (registry_ranges_quiescent of its gen). */
	struct ranges *ranges_now;
	struct retired_ranges {
		struct ranges *t; /* heap, or &cfg.ranges */
		uint64_t gen;
	} retired[RETIRED_MAX];
	size_t nretired;
};

/* Asks the main thread for a configuration reload. Callable from any
 * thread, at any time (the scrape server's POST /-/reload can call it). */
static void request_reload(void)
{
	pthread_mutex_lock(&req_lock);
	req_reload++;
	pthread_cond_broadcast(&req_cond);
	pthread_mutex_unlock(&req_lock);
}

static void request_shutdown(int sig)
{
	pthread_mutex_lock(&req_lock);
	if (!req_shutdown_signal)
		req_shutdown_signal = sig;
	pthread_cond_broadcast(&req_cond);
	pthread_mutex_unlock(&req_lock);
	struct capture *cap = __atomic_load_n(&the_capture, __ATOMIC_ACQUIRE);
	if (cap)
		capture_request_stop(cap); /* wakes --once's wait for the files */
}

/* The scrape page's POST /-/reload (an MHD thread, must not block): asks
 * for a reload like SIGHUP, so every reload runs on the main thread, one at
 * a time. -ESHUTDOWN once the agent stops. */
static int request_reload_http(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&req_lock);
	int closed = req_closed;
	if (!closed) {
		req_reload++;
		pthread_cond_broadcast(&req_cond);
	}
	pthread_mutex_unlock(&req_lock);
	return closed ? -ESHUTDOWN : 0;
}

/* Capture's on_no_source (a capture thread): every interface vanished and
 * reopening is off, so the agent must not look healthy: it exits 1. */
static void request_exit_no_source(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&req_lock);
	req_no_source = 1;
	pthread_cond_broadcast(&req_cond);
	pthread_mutex_unlock(&req_lock);
}

static int shutdown_requested(void)
{
	pthread_mutex_lock(&req_lock);
	int sig = req_shutdown_signal;
	pthread_mutex_unlock(&req_lock);
	return sig;
}

static const char *signal_name(int sig)
{
	return sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : "SIGHUP";
}

/* Takes the signals until main is done: SIGHUP asks for a reload; the
 * first SIGINT or SIGTERM for a shutdown; a second one while the shutdown
 * runs (an operator who will not wait for the final push), at least
 * SIGNAL_REPEAT_SECONDS after the first, ends the process at once, with
 * status 1, skipping what graceful work is left. */
static void *signal_thread(void *arg)
{
	const sigset_t *set = arg;
	double first_at = 0;
	for (;;) {
		int sig = 0;
		if (sigwait(set, &sig) != 0)
			continue;
		pthread_mutex_lock(&req_lock);
		int quit = req_signal_thread_quit;
		int second = req_shutdown_signal != 0;
		pthread_mutex_unlock(&req_lock);
		if (quit)
			return NULL;
		if (sig == SIGHUP) {
			request_reload();
			continue;
		}
		if (second) {
			if (time_monotonic() - first_at < SIGNAL_REPEAT_SECONDS) {
				log_debug("repeated signal taken as the same request", "signal=%s",
				          signal_name(sig));
				continue;
			}
			log_warn("second signal: exiting now, the graceful shutdown is cut short",
			         "signal=%s", signal_name(sig));
			/* The process ends here, threads and all: no atexit
			 * handlers, and no sanitizer finaliser either (TSan's _exit
			 * interceptor reports the threads cut short as leaks and
			 * turns the status into 66). */
			syscall(SYS_exit_group, 1);
			_exit(1);
		}
		first_at = time_monotonic();
		log_info("shutting down", "signal=%s", signal_name(sig));
		request_shutdown(sig);
		/* --once delivers on the main thread: abandon a push or a
		 * remote write in flight. */
		if (the_agent->cfg.once && the_agent->push)
			pushgateway_request_stop(the_agent->push);
		if (the_agent->cfg.once && the_agent->rw)
			remote_write_abandon(the_agent->rw);
	}
}

/* Frees the replaced ranges tables no capture thread uses any more,
 * waiting for them until deadline (time_monotonic(); 0: no wait). */
static void agent_reclaim_ranges(struct agent *a, double deadline)
{
	for (;;) {
		size_t keep = 0;
		for (size_t i = 0; i < a->nretired; i++) {
			struct retired_ranges *x = &a->retired[i];
			if (!registry_ranges_quiescent(&a->reg, x->gen)) {
				a->retired[keep++] = *x;
				continue;
			}
			ranges_free(x->t);
			if (x->t != &a->cfg.ranges)
				free(x->t);
		}
		a->nretired = keep;
		if (!keep || time_monotonic() >= deadline)
			return;
		usleep(2000);
	}
}

/* The reload hook, run on the main thread between waits (never while the
 * agent starts or stops), for SIGHUP and POST /-/reload alike. Config
 * reload goes here: re-read what can change at run time and apply it to
 * the running modules. Returns whether it succeeded; if not, why in err. */
static int agent_reload(struct agent *a, char *err, size_t errlen)
{
	const struct config *c = &a->cfg;
	int ok = 1;
	err[0] = '\0';
	log_info("reload requested", "%s", "");
	if (!c->config_file) {
		log_info("nothing to reload: no --config.file", "%s", "");
	} else {
		/* The file is read and checked again; changed ranges are
		 * applied to the running capture threads: series of label sets
		 * that stay continue, the others end (registry_ranges_map). */
		const struct ranges *cur = a->ranges_now ? a->ranges_now : &a->cfg.ranges;
		uint64_t keys0 = 0, lost0 = 0;
		int applied = 0;
		struct ranges *fresh = malloc(sizeof *fresh);
		if (!fresh) {
			snprintf(err, errlen, "out of memory");
			ok = 0;
		} else if (config_reload_ranges(c, fresh, err, errlen)) {
			ok = 0;
		} else if (ranges_equal(fresh, cur)) {
			log_info("config reloaded: ranges unchanged", "file=%s", c->config_file);
		} else if (a->nretired == RETIRED_MAX) {
			snprintf(err, errlen,
			         "%zu replaced ranges tables are still in use by capture threads",
			         a->nretired);
			ok = 0;
		} else {
			int rc = registry_ranges_map(&a->reg, fresh);
			if (rc) {
				snprintf(err, errlen, "%s",
				         rc == -ENOSPC
				             ? "too many label sets configured since start"
				             : "out of memory");
				ok = 0;
			} else {
				registry_reload_ended(&a->reg, &keys0, &lost0);
				uint64_t gen = registry_ranges_publish(&a->reg, fresh);
				capture_ranges_changed(a->cap);
				a->retired[a->nretired++] =
				    (struct retired_ranges){(struct ranges *)cur, gen};
				a->ranges_now = fresh;
				fresh = NULL;
				applied = 1;
			}
		}
		if (fresh) {
			ranges_free(fresh);
			free(fresh);
		}
		if (!ok)
			log_error("config reload failed: the running configuration is kept",
			          "err=%s", err);
		agent_reclaim_ranges(a, time_monotonic() + RETIRE_WAIT);
		if (applied) {
			/* what the capture threads ended, once every one moved (a
			 * thread still busy: what they ended so far) */
			uint64_t keys, lost;
			registry_reload_ended(&a->reg, &keys, &lost);
			log_info("config reloaded: ranges applied",
			         "file=%s ranges=%zu keys_ended=%llu stale_markers_lost=%llu "
			         "threads_moved=%s",
			         c->config_file, a->ranges_now->n,
			         (unsigned long long)(keys - keys0),
			         (unsigned long long)(lost - lost0), a->nretired ? "no" : "yes");
		}
	}
	if (a->reload_ok) {
		gauge_set(a->reload_ok, ok);
		if (ok)
			gauge_set(a->reload_ts, time_now());
	}
	return ok;
}

/* Usage rules across outputs and modes. */
static int check_usage(const struct config *c, char *err, size_t errlen)
{
	if (c->once && c->push_delete_on_exit) {
		snprintf(err, errlen,
		         "--push.delete-on-exit cannot be used with --once (the group would be "
		         "deleted as soon as it was pushed)");
		return -EINVAL;
	}
	return 0;
}

static void map_push_opts(const struct config *c, struct pushgateway_opts *o)
{
	*o = (struct pushgateway_opts){
	    .gateway = c->push_gateway,
	    .job = c->push_job,
	    .grouping = c->push_grouping,
	    .ngrouping = c->npush_grouping,
	    .interval = c->push_interval,
	    .post = c->push_post,
	    .delete_on_exit = c->push_delete_on_exit,
	    .http = c->push_http,
	};
}

/* Phase (a), first half: every module made, none started. 0 or -1
 * (logged). */
static int agent_create(struct agent *a)
{
	struct config *cfg = &a->cfg;
	char err[ERR_MAX] = "";

	if (registry_init(&a->reg, cfg->layout, &cfg->ranges, cfg->max_addresses)) {
		log_error("out of memory", "%s", "");
		return -1;
	}
	registry_set_idle_timeout(&a->reg, cfg->idle_timeout);
	a->reg_ok = 1;
	if (!cfg->once) {
		a->reload_ok = registry_self_add(
		    &a->reg, "promacct_config_last_reload_successful",
		    "Whether the last configuration reload (SIGHUP or POST /-/reload) succeeded: 0 "
		    "when the file "
		    "did not load or its ranges differ from the running ones (applied at restart).",
		    METRIC_GAUGE, NULL, NULL, NULL, NULL);
		a->reload_ts = registry_self_add(
		    &a->reg, "promacct_config_last_reload_success_timestamp_seconds",
		    "Time of the last successful configuration reload "
		    "(or of start-up).",
		    METRIC_GAUGE, NULL, NULL, NULL, NULL);
		if (!a->reload_ok || !a->reload_ts) {
			log_error("out of memory", "%s", "");
			return -1;
		}
		gauge_set(a->reload_ok, 1);
		gauge_set(a->reload_ts, time_now());
	}
	struct privdrop_opts pdo = {
	    .user = cfg->user,
	    .group = cfg->group,
	    .keep_net_raw = cfg->ninterfaces > 0 && cfg->interface_reopen_interval > 0,
	};
	if (privdrop_resolve(&pdo, &a->priv, err, sizeof err)) {
		log_error("cannot run as the given user", "err=%s", err);
		return -1;
	}
	struct capture_opts copts = {
	    .promisc = cfg->promisc,
	    .buffer_size = cfg->buffer_size,
	    .filter = cfg->filter,
	    .threads = cfg->capture_threads,
	    .interfaces = cfg->interfaces,
	    .ninterfaces = cfg->ninterfaces,
	    .files = cfg->reads,
	    .nfiles = cfg->nreads,
	    .reopen_interval = cfg->interface_reopen_interval,
	    .wait = cfg->interface_wait,
	    .read_once = cfg->once,
	    .on_no_source = request_exit_no_source,
	};
	a->cap = capture_new(&copts, &a->reg, err, sizeof err);
	if (!a->cap) {
		log_error("cannot capture", "err=%s", err);
		return -1;
	}
	if (cfg->push_gateway) {
		struct pushgateway_opts popts;
		map_push_opts(cfg, &popts);
		a->push = pushgateway_new(&popts, &a->reg, err, sizeof err);
		if (!a->push) {
			log_error("cannot set up pushing", "err=\"%s\"", err);
			return -1;
		}
	}
	if (cfg->nrw_urls) {
		struct remote_write_opts ro = {
		    .urls = cfg->rw_urls,
		    .nurls = cfg->nrw_urls,
		    .interval = cfg->rw_interval,
		    .max_samples_per_send = cfg->rw_max_samples_per_send,
		    .max_shards = cfg->rw_max_shards,
		    .queue_max_bytes = cfg->rw_queue_max_bytes,
		    .queue_max_samples = cfg->rw_queue_max_samples,
		    .headers = cfg->rw_headers,
		    .nheaders = cfg->nrw_headers,
		    .external_labels = cfg->rw_labels,
		    .nexternal_labels = cfg->nrw_labels,
		    .min_backoff = cfg->rw_min_backoff,
		    .max_backoff = cfg->rw_max_backoff,
		    .http = cfg->rw_http,
		    .queue_dir = cfg->rw_queue_dir,
		    .queue_chown = a->priv.switch_user,
		    .queue_uid = a->priv.uid,
		    .queue_gid = a->priv.gid,
		};
		a->rw = remote_write_new(&ro, &a->reg, err, sizeof err);
		if (!a->rw) {
			log_error("cannot set up remote write", "err=\"%s\"", err);
			return -1;
		}
	}
	if (!cfg->web_disable && !cfg->once) {
		a->status = status_page_new(&(struct status_page_opts){cfg->web_status_interval},
		                            &a->reg, err, sizeof err);
		if (!a->status) {
			log_error("cannot set up the status page", "err=\"%s\"", err);
			return -1;
		}
		struct http_server_opts hopts = {
		    .status = a->status,
		    .listen = cfg->listen,
		    .max_renders = (unsigned)cfg->web_max_requests,
		    .web = cfg->web,
		    .per_ip_limit = (unsigned)cfg->web_per_ip_limit,
		    .read_header_timeout = cfg->web_read_header_timeout,
		    .write_stall_timeout = cfg->web_write_stall_timeout,
		    .enable_lifecycle = cfg->web_enable_lifecycle,
		    .reload = request_reload_http,
		};
		a->http = http_server_new(&hopts, &a->reg, err, sizeof err);
		if (!a->http) {
			log_error("cannot set up the scrape page", "err=\"%s\"", err);
			return -1;
		}
	}
	return 0;
}

/* Phase (a), second half: start in order. 0 or -1 (logged); on failure the
 * caller frees everything without graceful work. */
static int agent_start(struct agent *a)
{
	struct config *cfg = &a->cfg;
	char err[ERR_MAX] = "";

	/* The scrape page first: binding is the start-up most likely to fail
	 * (address in use), and it must fail before anything reaches outside.
	 * Every self-metric is registered by now (the modules' _new). */
	if (a->http && http_server_start(a->http, err, sizeof err)) {
		log_error("cannot start the scrape page", "err=\"%s\"", err);
		return -1;
	}
	/* Capture handles and the listening socket are open: switch user and
	 * shed capabilities; the capture threads started next keep CAP_NET_RAW
	 * only if they reopen interfaces, every other thread has none. */
	if (privdrop_apply(&a->priv, err, sizeof err)) {
		log_error("cannot drop privileges", "err=%s", err);
		return -1;
	}
	if (capture_start(a->cap, err, sizeof err)) {
		log_error("cannot start capture", "err=\"%s\"", err);
		return -1;
	}
	privdrop_finish();
	if (a->status && status_page_start(a->status, err, sizeof err)) {
		log_error("cannot start the status page", "err=\"%s\"", err);
		return -1;
	}
	if (cfg->once)
		return 0; /* --once delivers on the main thread, no timers */
	/* Last, the outputs with effects outside: a push or a remote write is
	 * only sent by an agent that runs. */
	if (a->push && pushgateway_start(a->push, err, sizeof err)) {
		log_error("cannot start pushing", "err=\"%s\"", err);
		return -1;
	}
	if (a->rw && remote_write_start(a->rw, err, sizeof err)) {
		log_error("cannot start remote write", "err=\"%s\"", err);
		return -1;
	}
	return 0;
}

/* --once: waits for the files, then delivers once. Exit status. */
static int agent_run_once(struct agent *a)
{
	int failed = capture_wait_files(a->cap);
	int sig = shutdown_requested();
	if (sig) {
		log_warn("interrupted before the files were read", "signal=%d", sig);
		return 1;
	}
	/* A file that failed part way (truncated, unsupported) still gives
	 * what was read before; the exit status says it failed. */
	if (failed)
		log_error("capture files not read to their end; emitting what was read, exit "
		          "status 1",
		          "files=%d", failed);
	int status = failed ? 1 : 0;
	if (a->push && pushgateway_push_now(a->push))
		status = 1;
	if (a->rw && remote_write_send_once(a->rw, time_monotonic() + a->cfg.rw_http.timeout))
		status = 1;
	if ((a->push || a->rw) && shutdown_requested()) {
		log_warn("interrupted while delivering: output incomplete", "%s", "");
		status = 1;
	}
	if (!a->push && !a->rw) {
		/* streamed: written as it renders, one chunk held */
		int rc = expo_text_write_fd(&a->reg, STDOUT_FILENO, NULL);
		if (rc) {
			log_error("writing metrics failed", "err=\"%s\"", strerror(-rc));
			status = 1;
		}
	}
	return status;
}

/* Waits for requests; reloads run here, one at a time. Returns the exit
 * status at SIGINT/SIGTERM (0) or when no capture source is left (1). */
static int agent_serve(struct agent *a)
{
	for (;;) {
		pthread_mutex_lock(&req_lock);
		while (!req_shutdown_signal && !req_reload && !req_no_source)
			pthread_cond_wait(&req_cond, &req_lock);
		int sig = req_shutdown_signal;
		int reload = req_reload;
		int no_source = req_no_source;
		req_reload = 0;
		pthread_mutex_unlock(&req_lock);
		if (no_source && !sig) {
			log_error("exiting: no capture source is left "
			          "(--interface.reopen-interval 0)",
			          "%s", "");
			return 1;
		}
		if (sig)
			return 0; /* "shutting down" is logged by the signal thread */
		if (reload) {
			/* every POST /-/reload received by now gets this result
			 * (SIGHUPs and POSTs that come meanwhile: the next one) */
			char err[ERR_MAX];
			http_server_reload_begin(a->http);
			int ok = agent_reload(a, err, sizeof err);
			http_server_reload_end(a->http, ok, err);
		}
	}
}

/* Phase (b): serves until SIGINT or SIGTERM, doing reloads in between. */
static int agent_run(struct agent *a)
{
	int status = agent_serve(a);
	/* No reload runs any more: POST /-/reload answers 503 from now on,
	 * and so do the requests still waiting. */
	pthread_mutex_lock(&req_lock);
	req_closed = 1;
	pthread_mutex_unlock(&req_lock);
	http_server_reload_abort(a->http);
	return status;
}

static double shutdown_budget(const struct config *c)
{
	double b = SHUTDOWN_MIN_SECONDS;
	if (c->push_gateway && c->push_http.timeout > b)
		b = c->push_http.timeout;
	if (c->nrw_urls && c->rw_http.timeout > b)
		b = c->rw_http.timeout;
	return b;
}

struct push_shutdown {
	struct pushgateway *p;
	double deadline;
};

static void *push_shutdown_thread(void *arg)
{
	struct push_shutdown *ps = arg;
	pushgateway_shutdown(ps->p, ps->deadline);
	return NULL;
}

/* Phase (b) end: one deadline for everything. Capture stops first, so the
 * final push and remote write carry the last counts; the pusher and remote
 * write then finish side by side (a hanging gateway does not eat the remote
 * write's time), each bounded by the deadline. */
static void agent_shutdown(struct agent *a, double deadline)
{
	if (a->cap)
		capture_shutdown(a->cap, deadline);
	pthread_t pt;
	struct push_shutdown ps = {a->push, deadline};
	int side = a->push && a->rw && pthread_create(&pt, NULL, push_shutdown_thread, &ps) == 0;
	if (!side)
		pushgateway_shutdown(a->push, deadline);
	remote_write_shutdown(a->rw, deadline);
	if (side)
		pthread_join(pt, NULL);
	http_server_shutdown(a->http, deadline);
	status_page_shutdown(a->status, deadline);
}

/* Frees what was made. Threads still running are stopped without graceful
 * work (after a failed start-up). */
static void agent_free(struct agent *a)
{
	if (a->cap)
		capture_shutdown(a->cap, time_monotonic());
	http_server_free(a->http);
	status_page_free(a->status);
	pushgateway_free(a->push);
	remote_write_free(a->rw);
	capture_free(a->cap);
	/* no capture thread is left: every table goes */
	for (size_t i = 0; i < a->nretired; i++)
		if (a->retired[i].t != &a->cfg.ranges) {
			ranges_free(a->retired[i].t);
			free(a->retired[i].t);
		}
	a->nretired = 0;
	if (a->ranges_now) {
		ranges_free(a->ranges_now);
		free(a->ranges_now);
	}
	if (a->reg_ok)
		registry_free(&a->reg);
	config_free(&a->cfg);
}

int main(int argc, char **argv)
{
	static struct agent a;
	static sigset_t sigs;
	char err[ERR_MAX] = "";
	pthread_t sigthr;
	int sig_started = 0, status = 1;

	/* First of all, before the configuration (a large config file takes
	 * a while) and before any thread exists, so every thread inherits the
	 * mask: a signal during start-up waits for the signal thread. */
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);

	enum config_result cr = config_parse(&a.cfg, argc, argv, err, sizeof err);
	if (cr == CONFIG_OK && check_usage(&a.cfg, err, sizeof err))
		cr = CONFIG_USAGE;
	if (cr == CONFIG_EXIT_OK) {
		config_free(&a.cfg);
		return 0;
	}
	if (cr != CONFIG_OK) {
		fprintf(stderr, "promacct: error: %s\n", err);
		config_free(&a.cfg);
		return 2;
	}

	/* With --user/--group, no thread may ever gain privileges through
	 * exec: set before the first thread, so every thread inherits it. */
	if ((a.cfg.user || a.cfg.group) && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)) {
		fprintf(stderr, "promacct: error: cannot set no_new_privs: %s\n", strerror(errno));
		config_free(&a.cfg);
		return 1;
	}

	/* Phase (a): make and start everything, or free what was made. */
	if (agent_create(&a))
		goto out;
	__atomic_store_n(&the_capture, a.cap, __ATOMIC_RELEASE);
	the_agent = &a;
	/* Without it SIGTERM could not stop the agent: a start-up failure. */
	if (pthread_create(&sigthr, NULL, signal_thread, &sigs)) {
		log_error("cannot start the signal thread", "%s", "");
		goto out;
	}
	sig_started = 1;
	if (agent_start(&a))
		goto out;
	log_info("promacct started",
	         "version=%s interfaces=%zu files=%zu ranges=%zu listen=%s port=%d",
	         promacct_version, a.cfg.ninterfaces, a.cfg.nreads, a.cfg.ranges.n,
	         a.http ? a.cfg.listen : "disabled", a.http ? http_server_port(a.http) : 0);

	/* Phase (b): run, then shut down with one deadline. */
	if (a.cfg.once)
		status = agent_run_once(&a);
	else
		status = agent_run(&a);
	agent_shutdown(&a, time_monotonic() + shutdown_budget(&a.cfg));

out:
	if (sig_started) {
		pthread_mutex_lock(&req_lock);
		req_signal_thread_quit = 1;
		pthread_mutex_unlock(&req_lock);
		pthread_kill(sigthr, SIGTERM); /* blocked: its sigwait takes it and returns */
		pthread_join(sigthr, NULL);
	}
	__atomic_store_n(&the_capture, NULL, __ATOMIC_RELEASE);
	the_agent = NULL;
	agent_free(&a);
	return status;
}
