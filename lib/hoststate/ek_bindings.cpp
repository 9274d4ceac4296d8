#include "hoststate/ek_bindings.hpp"

#include <algorithm>
#include <filesystem>
#include <sstream>

#include "hoststate/host_files.hpp"
#include "util/durable_file.hpp"
#include "util/key_value.hpp"
#include "util/uuid.hpp"

namespace vtpm::hoststate {

namespace {

const char* family_key(EkFamily f) { return f == EkFamily::Rsa ? "rsa_ek_spki_sha256" : "ec_ek_spki_sha256"; }

}  // namespace

std::string format_ek_binding(const std::string& uuid, const EkBinding& b) {
    std::ostringstream o;
    o << "# EK keys vtpm-hostd certified for this VM (SHA-256 of the SubjectPublicKeyInfo)\n"
      << "vm_uuid = " << uuid << "\n";
    for (auto f : {EkFamily::Rsa, EkFamily::Ec})
        if (const auto& d = b[f]) o << family_key(f) << " = " << to_hex(ByteView(d->data(), d->size())) << "\n";
    return o.str();
}

Result<EkBinding> parse_ek_binding(std::string_view text, const std::string& uuid) {
    auto lines = parse_key_values(text, "EK binding");
    if (!lines) return lines.error();
    EkBinding b;
    bool have_uuid = false;
    for (const auto& kv : *lines) {
        const std::string where = "EK binding:" + std::to_string(kv.line) + ": ";
        if (kv.key == "vm_uuid") {
            if (have_uuid) return make_error(rc::kFail, where + "a second vm_uuid");
            if (kv.value != uuid) return make_error(rc::kFail, where + "belongs to VM " + kv.value + ", not " + uuid);
            have_uuid = true;
            continue;
        }
        bool known = false;
        for (auto f : {EkFamily::Rsa, EkFamily::Ec}) {
            if (kv.key != family_key(f)) continue;
            auto d = from_hex(kv.value);
            if (!d || d->size() != 32 || b[f]) return make_error(rc::kFail, where + "a bad or second " + kv.key);
            b[f].emplace();
            std::copy(d->begin(), d->end(), b[f]->begin());
            known = true;
        }
        if (!known) return make_error(rc::kFail, where + "unknown key '" + kv.key + "'");
    }
    if (!have_uuid) return make_error(rc::kFail, "EK binding: vm_uuid missing");
    return b;
}

std::vector<std::string> ek_file_paths(const std::string& host_dir) {
    std::vector<std::string> out;
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(host_dir + "/" + kVmsDir, ec))
        if (e.path().extension() == ".ek") out.push_back(e.path().string());
    std::sort(out.begin(), out.end());
    return out;
}

Result<std::map<std::string, EkBinding>> read_ek_files(const std::vector<std::string>& paths) {
    std::map<std::string, EkBinding> out;
    for (const auto& path : paths) {
        const std::string uuid = std::filesystem::path(path).stem().string();
        if (auto u = canonical_uuid(uuid); !u || *u != uuid)
            return make_error(rc::kFail, path + ": the name is not a VM UUID");
        auto raw = read_whole_file(path);
        if (!raw) return make_error(rc::kFail, path + ": " + raw.error().message);
        auto b = parse_ek_binding(std::string_view(reinterpret_cast<const char*>(raw->data()), raw->size()), uuid);
        if (!b) return make_error(rc::kFail, path + ": " + b.error().message);
        out.emplace(uuid, *b);
    }
    return out;
}

Result<EkBindingChange> bind_ek(EkBinding& b, EkFamily family, const Digest& spki, bool operator_peer,
                                const std::string& uuid) {
    auto& slot = b[family];
    if (slot && *slot == spki) return EkBindingChange::Unchanged;
    if (!slot) {
        slot = spki;
        return EkBindingChange::Bound;
    }
    if (!operator_peer)
        return make_error(rc::kFail, "VM " + uuid + " already has an " + (family == EkFamily::Rsa ? "RSA" : "ECC") +
                                         " EK with another key; re-manufacturing needs root");
    slot = spki;
    return EkBindingChange::Replaced;
}

}  // namespace vtpm::hoststate
