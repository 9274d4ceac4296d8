// The host TPM's monotonic counter that anchors vtpm-hostd's snapshot ledger
// (HOSTDIR/ledger): every ledger commit moves it by one, and the ledger file
// names the value it belongs to, so a HOSTDIR put back from a copy or backup
// is recognised when the daemon starts. An NV counter only counts up; not
// even a new index can start below the TPM's highest counter value.
#pragma once

#include <cstdint>
#include <optional>

#include "hosttpm/esys.hpp"
#include "util/bytes.hpp"
#include "vtpm/result.hpp"

namespace vtpm::hosttpm {

/// NV index of the ledger counter (owner range; documented in README).
inline constexpr uint32_t kLedgerCounterIndex = 0x01000010;

/// The counter, authorised by `auth`: a value the daemon derives from the
/// AuthKey's auth value (issuance::HostRoot::ledger_counter), so only the
/// daemon can move it, and the AuthKey's own value never crosses the TPM
/// interface.
class LedgerCounter {
public:
    explicit LedgerCounter(ByteView auth);
    ~LedgerCounter();
    LedgerCounter(const LedgerCounter&) = default;
    LedgerCounter& operator=(const LedgerCounter&) = default;

    /// The counter's value; nullopt when the index is not defined. An index
    /// that is there but not such a counter is an error.
    Result<std::optional<uint64_t>> read(Esys& tpm) const;
    /// Define the index (owner hierarchy, empty owner auth, as vtpm-host
    /// provision uses) and count once; returns the first value.
    Result<uint64_t> define(Esys& tpm) const;
    /// TPM2_NV_Increment; returns the new value.
    Result<uint64_t> increment(Esys& tpm) const;

private:
    TPM2B_AUTH auth_{};
};

}  // namespace vtpm::hosttpm
