// Where each VM's state-at-rest key is kept: HOSTDIR/vms/<uuid>.statekey,
// the key sealed to the host TPM (hosttpm/sealed_secret.hpp), mode 0600.
// Only the sealed form is ever on disk; vtpm-hostd unseals it on request.
#pragma once

#include <optional>
#include <string>

#include "util/bytes.hpp"
#include "vtpm/result.hpp"

namespace vtpm::hoststate {

/// The sealed key of VM `uuid` (canonical text), nullopt when it has none.
Result<std::optional<Bytes>> read_sealed_state_key(const std::string& host_dir, const std::string& uuid);

/// Keep VM `uuid`'s new sealed key, durably (creating HOSTDIR/vms). Refuses
/// when the VM has a key already: a key is never replaced, or the state it
/// encrypts would be lost.
Result<void> write_sealed_state_key(const std::string& host_dir, const std::string& uuid, ByteView sealed);

}  // namespace vtpm::hoststate
