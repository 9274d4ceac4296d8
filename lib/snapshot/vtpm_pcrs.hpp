// What a snapshot record needs from the running vTPM, through commands the
// bridge sends between the guest's: every vPCR of every active bank, a quote
// over them by the VM's vAIK (when it has one), and, for the taint policy,
// extending the vPCRs so that they can never attest as good again.
#pragma once

#include <optional>
#include <vector>

#include "engine/engine.hpp"
#include "snapshot/record.hpp"

namespace vtpm::snapshot {

/// PCRs 0-23 of every allocated bank, in bank order.
Result<std::vector<PcrBank>> read_all_pcrs(engine::Engine& e);

struct VaikQuote {
    Bytes vaik_public;  // marshalled TPM2B_PUBLIC
    Bytes attest, signature;
};
/// TPM2_Quote by the vAIK (tpm::kVaikHandle) over every PCR of `banks`
/// with `qualifying`; nullopt when the vTPM has no vAIK.
Result<std::optional<VaikQuote>> quote_with_vaik(engine::Engine& e, ByteView qualifying,
                                                 const std::vector<PcrBank>& banks);

/// Extend PCRs 0-16 and 23 (those locality 0 may extend) of every allocated
/// bank with a fresh random value that is never logged: no event log can
/// replay to them afterwards.
Result<void> taint_pcrs(engine::Engine& e);

}  // namespace vtpm::snapshot
