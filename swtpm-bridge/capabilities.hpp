// `--print-capabilities`: the JSON object swtpm prints, listing only what
// this bridge really implements.
#pragma once

#include <string>

namespace vtpm::bridge {

/// One line of JSON (no trailing newline). With tpm2, libtpms' RSA key sizes
/// are listed as `rsa-keysize-N` as swtpm does.
std::string capabilities_json(bool tpm2);

}  // namespace vtpm::bridge
