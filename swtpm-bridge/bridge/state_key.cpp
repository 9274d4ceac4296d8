#include "bridge/state_key.hpp"

#include <algorithm>
#include <utility>
#include <vector>

#include "hostapi/client.hpp"
#include "store/state_store.hpp"
#include "util/log.hpp"
#include "util/uuid.hpp"

namespace vtpm::bridge {

namespace {

// Rewrite every plaintext state file of `state_uri` encrypted with `key`.
// All files are read first, so a file that is not plaintext (encrypted with
// another key) stops the adoption before anything is rewritten.
Result<size_t> adopt_plain_state(const std::string& state_uri, bool tpm2, mode_t file_mode, const store::Key& key) {
    std::vector<std::pair<std::string, SecureBytes>> blobs;
    {
        auto plain = store::open_store(state_uri, tpm2, file_mode, std::nullopt);
        if (!plain) return plain.error();
        if (auto l = (*plain)->lock(); !l) return l.error();
        auto entries = (*plain)->list();
        if (!entries) return entries.error();
        for (const auto& e : *entries) {
            auto b = (*plain)->load(e.name);
            if (!b) return make_error(rc::kFail, "cannot adopt state file " + e.name + ": " + b.error().message);
            blobs.emplace_back(e.name, std::move(*b));
        }
    }  // lock released before the keyed store takes it
    if (blobs.empty()) return size_t{0};
    auto keyed = store::open_store(state_uri, tpm2, file_mode, key);
    if (!keyed) return keyed.error();
    if (auto l = (*keyed)->lock(); !l) return l.error();
    // permall last: until it is rewritten the state is recognisably unadopted.
    std::stable_sort(blobs.begin(), blobs.end(),
                     [](const auto& a, const auto& b) { return a.first != store::kPermall && b.first == store::kPermall; });
    for (const auto& [name, bytes] : blobs)
        if (auto w = (*keyed)->store(name, bytes.view()); !w)
            return make_error(rc::kFail, "cannot rewrite state file " + name + " encrypted: " + w.error().message);
    return blobs.size();
}

// Whether the state at `state_uri` opens without a key: absent or
// plaintext. If not (encrypted, most likely with the VM's sealed key), no new
// key may be made for it: it could never open that state.
Result<void> opens_without_key(const std::string& state_uri, bool tpm2, mode_t file_mode) {
    auto plain = store::open_store(state_uri, tpm2, file_mode, std::nullopt);
    if (!plain) return plain.error();
    if (auto l = (*plain)->lock(); !l) return l.error();
    auto b = (*plain)->load(std::string(store::kPermall));
    if (!b && b.code() != rc::kRetry) return b.error();  // kRetry: no permanent state yet
    return {};
}

}  // namespace

Result<store::Key> sealed_state_key(const SnapshotSettings& s, const std::string& state_uri, bool tpm2,
                                    mode_t file_mode) {
    hostapi::Uuid vm{};
    std::copy(s.guard.vm_uuid->begin(), s.guard.vm_uuid->end(), vm.begin());
    const std::string uuid = format_uuid(*s.guard.vm_uuid);
    bool created = false;
    // A state that needs a key gets the existing one or none: were the VM's
    // key file lost, a fresh key would only make every later start fail.
    const auto plain = opens_without_key(state_uri, tpm2, file_mode);
    auto raw = hostapi::Client(s.host_socket).state_key(vm, plain.ok(), &created);
    if (!raw && !plain)
        return make_error(rc::kFail, "state_key = sealed: the state in " + state_uri +
                                         " does not open without a key (" + plain.error().message +
                                         "), and vtpm-hostd has no sealed key for VM " + uuid + " (HOSTDIR/vms/" +
                                         uuid + ".statekey lost or another VM's state?): " + raw.error().message);
    if (!raw) return make_error(rc::kFail, "state_key = sealed: " + raw.error().message);
    store::Key key(std::move(*raw));
    key.authenticated_only = true;
    if (created) {
        auto n = adopt_plain_state(state_uri, tpm2, file_mode, key);
        if (!n) return make_error(rc::kFail, "state_key = sealed: VM " + uuid + "'s new key: " + n.error().message);
        VTPM_LOG_INFO("state at rest: VM %s's new sealed key from vtpm-hostd; %zu plaintext state file(s) adopted "
                      "(rewritten encrypted)", uuid.c_str(), *n);
    } else {
        VTPM_LOG_INFO("state at rest: encrypted with VM %s's sealed key from vtpm-hostd", uuid.c_str());
    }
    return key;
}

}  // namespace vtpm::bridge
