// The measured operations and the per-server state they run against.
#pragma once

#include <tss2/tss2_tpm2_types.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "server.hpp"
#include "stats.hpp"
#include "util/fd.hpp"
#include "vtpm/result.hpp"

namespace bench {

using Bytes = std::vector<uint8_t>;

/// Samples of one batch, per series name (µs).
using Batch = std::map<std::string, std::vector<double>>;

/// One server under measurement with its long-lived connections.
struct Target {
    std::unique_ptr<Server> server;
    vtpm::UniqueFd data, ctrl;
    Bytes rsp;                // response buffer, reused
    TPM2_HANDLE quote_key = 0;
    uint32_t variant = 0;     // CreatePrimary unique field: same sequence on both servers
    uint8_t fill = 0;         // PCR_Extend / NV_Write payload byte
    int retries = 0;          // TPM_RC_RETRY answers resubmitted
    Bytes perm_blob, vol_blob, blob_scratch;
    std::map<std::string, Rounds> samples;  // series -> measured rounds
    std::map<std::string, Rounds> cpu_us;   // op -> server CPU µs per iteration, one value per round

    const std::string& name() const { return server->name(); }
};

struct RowSpec {
    std::string series;
    double target;  // ratio target
};

struct Op {
    std::string name;
    std::vector<RowSpec> rows;  // series one iteration records
    int batch = 1;              // iterations per batch in a full run
    int rounds_scale = 1;       // × --rounds: more, smaller batches where the noise drifts fast
    /// Untimed, before the op's batches on a server (may be null).
    std::function<vtpm::Result<void>(Target&)> prepare;
    /// One iteration; records into `batch` (nullptr for warm-up iterations).
    std::function<vtpm::Result<void>(Target&, Batch*)> iterate;
};

/// Connect both channels and create what the ops use once, untimed: the NV
/// index for NV_Write and the primary signing key for Quote.
vtpm::Result<void> setup_target(Target& t);

/// All latency operations, in the order they are run.
std::vector<Op> latency_ops();

/// GetRandom(32) back to back, recorded as `series` and held to `target`:
/// a latency row, and the floor server's round trip beside swtpm's
/// (vtpm-bench-floor answers nothing else).
Op get_random_op(const std::string& name, const std::string& series, double target);

/// A TPM response code other than success is an error naming the command.
vtpm::Result<void> expect_success(const Bytes& rsp, const char* command);

inline constexpr TPM2_HANDLE kNvIndex = 0x01500100;
inline constexpr uint16_t kNvSize = 32;
inline constexpr TPM2_HANDLE kBenchPcr = 16;

}  // namespace bench
