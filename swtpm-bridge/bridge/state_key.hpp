// state_key = sealed: the VM's state-at-rest key comes from vtpm-hostd,
// which keeps it sealed to the host TPM; no libvirt secret, no passphrase.
#pragma once

#include <sys/types.h>

#include <string>

#include "bridge/snapshot_settings.hpp"
#include "store/key.hpp"
#include "vtpm/result.hpp"

namespace vtpm::bridge {

/// The VM's sealed state key (made by vtpm-hostd on the VM's first start
/// with state_key = sealed), for the store at `state_uri`. When the key is
/// new, a plaintext state already there (made by swtpm_setup without a key)
/// is adopted: every state file is rewritten encrypted before the TPM
/// starts. From then on plaintext and legacy unauthenticated state files
/// are refused. Errors name what failed; nothing is written on failure
/// before the key exists.
Result<store::Key> sealed_state_key(const SnapshotSettings& s, const std::string& state_uri, bool tpm2,
                                    mode_t file_mode);

}  // namespace vtpm::bridge
