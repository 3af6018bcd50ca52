/* Dropping privileges after start-up: --user/--group, and every capability
 * the agent does not need for the rest of its run.
 *
 * Capabilities are per thread on Linux, so the drop has two steps around
 * the start of the capture threads:
 *   privdrop_resolve   at start-up: looks the user and group up
 *   ... open capture handles and the listening socket ...
 *   privdrop_apply     switches group and user (every thread), leaves the
 *                      calling thread only CAP_NET_RAW when keep_net_raw
 *                      (capture threads it starts next inherit it, to
 *                      reopen interfaces that come back) and every other
 *                      thread of the process none
 *   ... start the capture threads ...
 *   privdrop_finish    the calling thread drops what it kept; threads it
 *                      starts later have no capability
 * No new privileges are possible afterwards (PR_SET_NO_NEW_PRIVS). */
#ifndef PROMACCT_PRIVDROP_H
#define PROMACCT_PRIVDROP_H

#include <stddef.h>
#include <sys/types.h>

#include "promacct/common.h"

struct privdrop_opts {
	const char *user;  /* name or numeric id, or NULL: keep the user */
	const char *group; /* name or numeric id, or NULL: the user's group */
	int keep_net_raw;  /* capture threads keep CAP_NET_RAW (reopening) */
};

struct privdrop {
	struct privdrop_opts opts;
	int switch_user;
	uid_t uid;
	gid_t gid;
};

/* Looks the user and group up. 0, or -EINVAL with a message naming the
 * unknown user or group. */
int privdrop_resolve(const struct privdrop_opts *o, struct privdrop *pd, char *err,
                     size_t errlen) MUST_CHECK;
/* See above. 0, or a negative errno with a message (the agent must then
 * not run: it could not shed what it was asked to). */
int privdrop_apply(const struct privdrop *pd, char *err, size_t errlen) MUST_CHECK;
void privdrop_finish(void);

#endif
