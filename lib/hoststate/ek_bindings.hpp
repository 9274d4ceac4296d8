// Which EK keys a VM's vTPM has, bound the first time vtpm-hostd certifies
// an EK of that VM. A vTPM has one RSA and one ECC EK (vtpm-setup makes
// both), so a binding is one SHA-256 of a DER SubjectPublicKeyInfo per key
// family. Without it anyone who may talk to the daemon could have a software
// key certified as some VM's EK, and then as its vAIK; with it a second key
// for a VM needs root (re-manufacturing). The daemon keeps the bindings in
// its ledger (ledger.hpp), anchored in the host TPM's counter, so an older
// binding put back is found out; older versions kept each in
// HOSTDIR/vms/<uuid>.ek, which the ledger takes in once.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "util/sha256.hpp"
#include "vtpm/result.hpp"

namespace vtpm::hoststate {

enum class EkFamily { Rsa, Ec };

struct EkBinding {
    std::optional<Digest> rsa, ec;
    std::optional<Digest>& operator[](EkFamily f) { return f == EkFamily::Rsa ? rsa : ec; }
    const std::optional<Digest>& operator[](EkFamily f) const { return f == EkFamily::Rsa ? rsa : ec; }
    bool operator==(const EkBinding&) const = default;
};

/// Text form ("key = value" lines); the parser refuses what it does not know.
std::string format_ek_binding(const std::string& uuid, const EkBinding& b);
Result<EkBinding> parse_ek_binding(std::string_view text, const std::string& uuid);

/// The HOSTDIR/vms/<uuid>.ek files older versions wrote, sorted.
std::vector<std::string> ek_file_paths(const std::string& host_dir);
/// The bindings in those files (`paths`, from ek_file_paths), by VM; an
/// error names a damaged file or one whose name is not a VM UUID.
Result<std::map<std::string, EkBinding>> read_ek_files(const std::vector<std::string>& paths);

/// What certifying EK key `spki` of `family` for VM `uuid` does to `b`.
enum class EkBindingChange { Unchanged, Bound, Replaced };
/// Binds a family the VM has no key of yet; a key other than the bound one
/// only for an operator (root re-manufacturing the vTPM), else refused.
Result<EkBindingChange> bind_ek(EkBinding& b, EkFamily family, const Digest& spki, bool operator_peer,
                                const std::string& uuid);

}  // namespace vtpm::hoststate
