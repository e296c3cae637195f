/*
 * blitzio.h — the umbrella header: includes every module header and nothing else.
 */
#ifndef BLITZIO_H
#define BLITZIO_H

#include "blitzio/chan.h"
#include "blitzio/common.h"
#include "blitzio/fs.h"
#include "blitzio/future.h"
#include "blitzio/io.h"
#include "blitzio/net.h"
#include "blitzio/process.h"
#include "blitzio/rt.h"
#include "blitzio/shutdown.h"
#include "blitzio/signal.h"
#include "blitzio/stream.h"
#include "blitzio/sync.h"
#include "blitzio/task.h"
#include "blitzio/time.h"

#endif
