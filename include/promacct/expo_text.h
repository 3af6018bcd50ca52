/* Prometheus text exposition format 0.0.4. */
#ifndef PROMACCT_EXPO_TEXT_H
#define PROMACCT_EXPO_TEXT_H

#include "promacct/buf.h"
#include "promacct/registry.h"

#define EXPO_TEXT_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* Renders the whole registry into out (appended). Returns 0, -ENOMEM or
 * -E2BIG when the page would exceed out->max. */
int expo_text_render(struct registry *r, struct buf *out) MUST_CHECK;

/* Writes a HELP text escaped (backslash, newline). */
void expo_text_escape_help(struct buf *b, const char *help);

#endif
