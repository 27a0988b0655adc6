/* SPDX-License-Identifier: MIT */
/*
 * troupe: actors with typed mailboxes on a work-stealing scheduler.
 *
 * This umbrella header is the whole supported API: anything not reachable
 * from it is internal and may change without notice.
 */
#ifndef TROUPE_H
#define TROUPE_H

#include <troupe/common.h>
#include <troupe/version.h>
#include <troupe/errno.h>
#include <troupe/mailbox.h>
#include <troupe/actor.h>
#include <troupe/supervisor.h>
#include <troupe/channel.h>
#include <troupe/io.h>
#include <troupe/net.h>
#include <troupe/tls.h>

#endif
