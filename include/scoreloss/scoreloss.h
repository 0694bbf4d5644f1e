/* scoreloss: landscape-designed losses with estimated score functions.
 * The one header to include; each module has its own. */
#ifndef SCORELOSS_H
#define SCORELOSS_H

#include "scoreloss/status.h"
#include "scoreloss/rng.h"
#include "scoreloss/csv.h"
#include "scoreloss/memlimit.h"
#include "scoreloss/dist.h"
#include "scoreloss/network.h"
#include "scoreloss/score.h"
#include "scoreloss/sgd.h"
#include "scoreloss/loss.h"
#include "scoreloss/logdens.h"
#include "scoreloss/s4.h"
#include "scoreloss/recover.h"
#include "scoreloss/plane.h"
#include "scoreloss/census.h"
#include "scoreloss/bind.h"

#endif
