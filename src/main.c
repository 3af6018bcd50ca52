/* DESIGN: process start-up, signal handling and shutdown.
 *
 * The main thread parses the command line, opens every capture source and
 * the listening socket before any thread starts (so all start-up errors are
 * reported with exit status 1 before the agent claims to run), then starts
 * the capture threads, the scrape server and the push/remote-write timers.
 * SIGINT and SIGTERM are blocked in every thread and taken by sigwait on a
 * dedicated thread, which records the request and wakes the main thread;
 * shutdown is then ordinary code, not signal-handler code. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "promacct/buf.h"
#include "promacct/capture.h"
#include "promacct/config.h"
#include "promacct/expo_text.h"
#include "promacct/http_server.h"
#include "promacct/log.h"
#include "promacct/pushgateway.h"
#include "promacct/registry.h"
#include "promacct/remote_write.h"

#define ERR_MAX 1024

static pthread_mutex_t wake_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake_cond = PTHREAD_COND_INITIALIZER;
static int shutdown_signal;
static struct capture *the_capture;

static void *signal_thread(void *arg)
{
	sigset_t *set = arg;
	int sig = 0;
	while (sigwait(set, &sig) != 0)
		;
	pthread_mutex_lock(&wake_lock);
	shutdown_signal = sig;
	pthread_cond_broadcast(&wake_cond);
	pthread_mutex_unlock(&wake_lock);
	if (the_capture)
		capture_request_stop(the_capture);
	return NULL;
}

int main(int argc, char **argv)
{
	struct config cfg;
	struct registry reg;
	char err[ERR_MAX] = "";
	int status = 1;
	struct capture *cap = NULL;
	struct http_server *http = NULL;
	struct pushgateway *push = NULL;
	struct remote_write *rw = NULL;
	pthread_t sigthr;
	int reg_ok = 0, sig_started = 0;
	static sigset_t sigs;

	enum config_result cr = config_parse(&cfg, argc, argv, err, sizeof err);
	if (cr == CONFIG_EXIT_OK) {
		config_free(&cfg);
		return 0;
	}
	if (cr != CONFIG_OK) {
		fprintf(stderr, "promacct: error: %s\n", err);
		config_free(&cfg);
		return 2;
	}

	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);

	if (registry_init(&reg, cfg.layout, &cfg.ranges, cfg.max_addresses)) {
		log_error("out of memory", "%s", "");
		goto out;
	}
	reg_ok = 1;
	struct capture_opts copts = {cfg.promisc, cfg.buffer_size, cfg.filter, cfg.capture_threads};
	cap = capture_new(&reg, &copts);
	if (!cap) {
		log_error("out of memory", "%s", "");
		goto out;
	}
	for (size_t i = 0; i < cfg.ninterfaces; i++)
		if (capture_add_interface(cap, cfg.interfaces[i], err, sizeof err)) {
			log_error("cannot capture", "err=\"%s\"", err);
			goto out;
		}
	for (size_t i = 0; i < cfg.nreads; i++)
		if (capture_add_file(cap, cfg.reads[i], err, sizeof err)) {
			log_error("cannot read capture file", "err=\"%s\"", err);
			goto out;
		}
	if (cfg.push_gateway) {
		push = pushgateway_new(&cfg, &reg, err, sizeof err);
		if (!push) {
			log_error("cannot set up pushing", "err=\"%s\"", err);
			goto out;
		}
	}
	if (cfg.nrw_urls) {
		rw = remote_write_new(&cfg, &reg, err, sizeof err);
		if (!rw) {
			log_error("cannot set up remote write", "err=\"%s\"", err);
			goto out;
		}
	}

	/* Last: its threads may serve scrapes at once, and every self-metric
	 * (push, remote write) must be registered before anything reads. */
	if (!cfg.web_disable && !cfg.once) {
		http = http_server_start(cfg.listen, &reg, err, sizeof err);
		if (!http) {
			log_error("cannot start the scrape page", "err=\"%s\"", err);
			goto out;
		}
	}

	the_capture = cap;
	if (pthread_create(&sigthr, NULL, signal_thread, &sigs) == 0)
		sig_started = 1;
	if (capture_start(cap, err, sizeof err)) {
		log_error("cannot start capture", "err=\"%s\"", err);
		goto out;
	}
	log_info("promacct started",
	         "version=%s interfaces=%zu files=%zu ranges=%zu listen=%s port=%d",
	         promacct_version, cfg.ninterfaces, cfg.nreads, cfg.ranges.n,
	         http ? cfg.listen : "disabled", http ? http_server_port(http) : 0);

	if (cfg.once) {
		int failed = capture_wait_files(cap);
		pthread_mutex_lock(&wake_lock);
		int sig = shutdown_signal;
		pthread_mutex_unlock(&wake_lock);
		if (sig) {
			log_warn("interrupted before the files were read", "signal=%d", sig);
			goto out;
		}
		if (failed) {
			log_error("reading capture files failed", "files=%d", failed);
			goto out;
		}
		status = 0;
		if (push && pushgateway_push_now(push))
			status = 1;
		if (rw && remote_write_send_once(rw))
			status = 1;
		if (!push && !rw) {
			/* streamed: written as it renders, one chunk held */
			int rc = expo_text_write_fd(&reg, STDOUT_FILENO, NULL);
			if (rc) {
				log_error("writing metrics failed", "err=\"%s\"", strerror(-rc));
				status = 1;
			}
		}
		goto out;
	}

	if (push && pushgateway_start(push)) {
		log_error("cannot start the push thread", "%s", "");
		goto out;
	}
	if (rw && remote_write_start(rw)) {
		log_error("cannot start remote write", "%s", "");
		goto out;
	}
	pthread_mutex_lock(&wake_lock);
	while (!shutdown_signal)
		pthread_cond_wait(&wake_cond, &wake_lock);
	int sig = shutdown_signal;
	pthread_mutex_unlock(&wake_lock);
	log_info("shutting down", "signal=%s", sig == SIGINT ? "SIGINT" : "SIGTERM");
	status = 0;

out:
	if (cap)
		capture_stop(cap);
	if (push)
		pushgateway_stop(push);
	if (rw)
		remote_write_stop(rw);
	http_server_stop(http);
	if (sig_started) {
		pthread_mutex_lock(&wake_lock);
		int pending = !shutdown_signal;
		pthread_mutex_unlock(&wake_lock);
		if (pending)
			pthread_kill(sigthr, SIGTERM); /* blocked: sigwait takes it */
		pthread_join(sigthr, NULL);
	}
	the_capture = NULL;
	pushgateway_free(push);
	remote_write_free(rw);
	capture_free(cap);
	if (reg_ok)
		registry_free(&reg);
	config_free(&cfg);
	return status;
}
