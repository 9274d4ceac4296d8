// `--print-capabilities`: the JSON object swtpm prints, listing only what
// this bridge really implements.
#pragma once

#include <string>
#include <vector>

namespace vtpm::bridge {

/// One line of JSON (no trailing newline). With tpm2, libtpms' RSA key sizes
/// are listed as `rsa-keysize-N` as swtpm does.
std::string capabilities_json(bool tpm2);

/// `swtpm_setup --print-capabilities`: what vtpm-setup implements, in the
/// feature names libvirt checks.
std::string setup_capabilities_json();

/// RSA key sizes libtpms supports for TPM 2.0 (switches libtpms to TPM 2.0).
std::vector<unsigned> rsa_key_sizes();

}  // namespace vtpm::bridge
