#include "hoststate/ek_bindings.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <sstream>

#include "hoststate/host_files.hpp"
#include "util/durable_file.hpp"

namespace vtpm::hoststate {

namespace {

std::string binding_path(const std::string& host_dir, const std::string& uuid) {
    return host_dir + "/" + kVmsDir + "/" + uuid + ".ek";
}

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
    EkBinding b;
    bool have_uuid = false;
    std::istringstream in{std::string(text)};
    std::string line;
    while (std::getline(in, line)) {
        if (line.empty() || line[0] == '#') continue;
        const auto eq = line.find(" = ");
        if (eq == std::string::npos) return make_error(rc::kFail, "EK binding: bad line '" + line + "'");
        const std::string key = line.substr(0, eq), value = line.substr(eq + 3);
        if (key == "vm_uuid") {
            if (value != uuid) return make_error(rc::kFail, "EK binding: belongs to VM " + value + ", not " + uuid);
            have_uuid = true;
            continue;
        }
        bool known = false;
        for (auto f : {EkFamily::Rsa, EkFamily::Ec}) {
            if (key != family_key(f)) continue;
            auto d = from_hex(value);
            if (!d || d->size() != 32 || b[f]) return make_error(rc::kFail, "EK binding: bad " + key);
            b[f].emplace();
            std::copy(d->begin(), d->end(), b[f]->begin());
            known = true;
        }
        if (!known) return make_error(rc::kFail, "EK binding: unknown key '" + key + "'");
    }
    if (!have_uuid) return make_error(rc::kFail, "EK binding: vm_uuid missing");
    return b;
}

Result<EkBinding> read_ek_binding(const std::string& host_dir, const std::string& uuid) {
    const std::string path = binding_path(host_dir, uuid);
    auto raw = read_whole_file(path);
    if (!raw) {
        if (raw.code() == rc::kRetry) return EkBinding{};
        return make_error(rc::kFail, path + ": " + raw.error().message);
    }
    auto b = parse_ek_binding(std::string_view(reinterpret_cast<const char*>(raw->data()), raw->size()), uuid);
    if (!b) return make_error(rc::kFail, path + ": " + b.error().message);
    return b;
}

Result<void> write_ek_binding(const std::string& host_dir, const std::string& uuid, const EkBinding& b) {
    const std::string dir = host_dir + "/" + kVmsDir, path = binding_path(host_dir, uuid);
    if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST)
        return make_error(rc::kFail, "cannot create " + dir + ": " + std::strerror(errno));
    const std::string text = format_ek_binding(uuid, b);
    return replace_file_durably(path + ".tmp", path,
                                ByteView(reinterpret_cast<const uint8_t*>(text.data()), text.size()), 0600);
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
