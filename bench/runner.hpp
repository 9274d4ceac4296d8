// Interleaved measurement of the latency operations on the two servers.
#pragma once

#include "ops.hpp"
#include "vtpm/result.hpp"

namespace bench {

/// Iterations per batch: the op's own count, a tenth of it with --quick.
int batch_size(const Op& op, bool quick);

/// One batch on one server: an untimed first iteration (the server wakes up
/// from idle; it would otherwise be the p99 of the cheap operations), then
/// `n` iterations whose samples are stored as one round unless `warm_up`.
vtpm::Result<void> run_batch(const Op& op, Target& t, int n, bool warm_up);

/// The op's untimed preparation on a server, if it has one.
vtpm::Result<void> prepare(const Op& op, Target& t);

/// A warm-up batch on each server (discarded), then `rounds × op.rounds_scale`
/// rounds of one batch per server, alternating who goes first (ABBA) so
/// drift hits both alike, with a short pause after every batch.
vtpm::Result<void> measure(const Op& op, Target& a, Target& b, int rounds, bool quick);

}  // namespace bench
