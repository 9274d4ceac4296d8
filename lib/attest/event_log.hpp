// The TCG PC Client crypto-agile event log (what firmware leaves in
// /sys/kernel/security/tpm0/binary_bios_measurements): parsing, and
// replaying it into the PCR values it claims. Pure; the bytes are untrusted.
#pragma once

#include <cstdint>
#include <map>
#include <utility>
#include <vector>

#include "util/bytes.hpp"
#include "vtpm/result.hpp"

namespace vtpm::attest {

struct LogEvent {
    uint32_t pcr = 0, type = 0;
    std::vector<std::pair<uint16_t, Bytes>> digests;  // (TPM alg, digest)
    Bytes data;
};

struct EventLog {
    std::vector<std::pair<uint16_t, uint16_t>> algorithms;  // from the Spec ID event: (alg, size)
    std::vector<LogEvent> events;                           // after the Spec ID event
};

inline constexpr uint32_t kEvNoAction = 3;

/// Parse a crypto-agile log ("Spec ID Event03" header). The error names the
/// event number and byte offset where the log stops making sense.
Result<EventLog> parse_event_log(ByteView log);

/// (alg, pcr) -> value after replaying every measured event from the initial
/// values (zero; PCR 0 starts at the StartupLocality the log records).
using PcrValues = std::map<std::pair<uint16_t, unsigned>, Bytes>;
Result<PcrValues> replay_event_log(const EventLog& log);

}  // namespace vtpm::attest
