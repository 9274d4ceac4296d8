#include "bridge/snapshot_settings.hpp"

#include <algorithm>
#include <cstdlib>
#include <map>

#include "snapshot/record_signer.hpp"
#include "tpm/mu.hpp"
#include "util/durable_file.hpp"
#include "util/key_value.hpp"
#include "util/log.hpp"
#include "util/subopts.hpp"
#include "util/uuid.hpp"

namespace vtpm::bridge {

namespace {

Result<std::map<std::string, std::string>> parse_config(std::string_view text) {
    static const std::string_view kKeys[] = {"vm_memory", "policy",    "required", "host_socket", "vendor_ctrl",
                                             "log_level", "verify",    "admin_socket", "state_key"};
    auto lines = parse_key_values(text, "bridge config");
    if (!lines) return make_error(rc::kBadParameter, lines.error().message);
    std::map<std::string, std::string> out;
    for (auto& kv : *lines) {
        if (std::find(std::begin(kKeys), std::end(kKeys), kv.key) == std::end(kKeys))
            return make_error(rc::kBadParameter,
                              "bridge config:" + std::to_string(kv.line) + ": unknown key '" + kv.key + "'");
        out[kv.key] = std::move(kv.value);
    }
    return out;
}

Result<bool> yes_no(const std::string& what, const std::string& v) {
    if (v == "yes" || v == "true" || v == "1") return true;
    if (v == "no" || v == "false" || v == "0") return false;
    return make_error(rc::kBadParameter, what + ": '" + v + "' is neither yes nor no");
}

// "{uuid}" in a path replaced by the VM UUID.
std::string with_uuid(std::string path, const std::string& uuid) {
    if (auto p = path.find("{uuid}"); p != std::string::npos) path.replace(p, 6, uuid);
    return path;
}

// "peer" or a path ("{uuid}" substituted).
void set_memory(snapshot::GuardConfig& g, const std::string& v, const std::string& uuid) {
    g.memory_from_peer = v == "peer";
    g.memory_path.clear();
    if (!g.memory_from_peer) g.memory_path = with_uuid(v, uuid);
}

// state_key = sealed | none.
Result<bool> sealed_or_none(const std::string& what, const std::string& v) {
    if (v == "sealed") return true;
    if (v == "none") return false;
    return make_error(rc::kBadParameter, what + ": '" + v + "' is neither sealed nor none");
}

// verify = load | before-run.
Result<bool> verify_before_run(const std::string& what, const std::string& v) {
    if (v == "before-run") return true;
    if (v == "load") return false;
    return make_error(rc::kBadParameter, what + ": '" + v + "' is neither load nor before-run");
}

}  // namespace

std::optional<std::string> uuid_from_state_path(std::string_view state_uri) {
    std::string_view path = state_uri;
    if (auto p = path.find("://"); p != std::string_view::npos) path.remove_prefix(p + 3);
    std::optional<std::string> found;
    size_t start = 0;
    while (start <= path.size()) {
        size_t end = path.find('/', start);
        if (end == std::string_view::npos) end = path.size();
        const std::string_view part = path.substr(start, end - start);
        if (part.size() == 36)
            if (auto u = canonical_uuid(part)) found = *u;
        start = end + 1;
    }
    return found;
}

Result<SnapshotSettings> resolve_snapshot_settings(const BridgeOptions& o, std::string_view config_text) {
    auto cfg = parse_config(config_text);
    if (!cfg) return cfg.error();
    SnapshotSettings s;
    auto& g = s.guard;

    std::optional<std::string> uuid;
    if (o.vm_uuid) {
        auto u = canonical_uuid(*o.vm_uuid);
        if (!u) return make_error(rc::kBadParameter, "option --vm-uuid: '" + *o.vm_uuid + "' is not a UUID");
        uuid = *u;
    } else {
        uuid = uuid_from_state_path(o.state_uri);
    }
    if (uuid) {
        auto raw = parse_uuid(*uuid);
        if (!raw) return raw.error();
        g.vm_uuid = *raw;
    }

    // Whether the options or the config ask for verification in so many
    // words (a verifying policy, required, verify=before-run): then a bridge
    // without what verification needs must not start as a plain swtpm.
    bool asked = false;
    // The config file first, then the command line over it.
    if (auto v = cfg->find("vm_memory"); v != cfg->end()) set_memory(g, v->second, uuid.value_or(""));
    if (auto v = cfg->find("policy"); v != cfg->end()) {
        auto p = snapshot::parse_policy(v->second);
        if (!p) return make_error(rc::kBadParameter, "bridge config policy: " + p.error().message);
        g.policy = *p;
        asked = true;
    }
    if (auto v = cfg->find("required"); v != cfg->end()) {
        auto b = yes_no("bridge config required", v->second);
        if (!b) return b.error();
        g.required = *b;
        asked = asked || *b;
    }
    if (auto v = cfg->find("host_socket"); v != cfg->end()) s.host_socket = v->second;
    if (auto v = cfg->find("verify"); v != cfg->end()) {
        auto b = verify_before_run("bridge config verify", v->second);
        if (!b) return b.error();
        g.verify_before_run = *b;
        asked = asked || *b;
    }
    if (auto v = cfg->find("admin_socket"); v != cfg->end()) s.admin_socket = v->second;
    if (o.vtpm_admin_socket) s.admin_socket = *o.vtpm_admin_socket;
    if (s.admin_socket.find("{uuid}") != std::string::npos) {
        if (!uuid)
            return make_error(rc::kBadParameter, "the admin socket path " + s.admin_socket +
                                                     " names {uuid}, but the VM UUID is not known");
        s.admin_socket = with_uuid(s.admin_socket, *uuid);
    }
    if (auto v = cfg->find("vendor_ctrl"); v != cfg->end()) {
        auto b = yes_no("bridge config vendor_ctrl", v->second);
        if (!b) return b.error();
        s.vendor_ctrl = *b;
    }

    if (auto v = cfg->find("log_level"); v != cfg->end()) {
        char* end = nullptr;
        const unsigned long n = std::strtoul(v->second.c_str(), &end, 10);
        if (v->second.empty() || *end != '\0' || n > 20)
            return make_error(rc::kBadParameter, "bridge config log_level: '" + v->second + "' is not a level (0-20)");
        s.log_level = static_cast<unsigned>(n);
    }

    if (o.vm_memory) {
        auto so = SubOpts::parse(*o.vm_memory, {"path", "peer", "policy", "required", "verify"});
        if (!so) return make_error(rc::kBadParameter, "option --vm-memory: " + so.error().message);
        if (auto p = so->str("path")) set_memory(g, *p, uuid.value_or(""));
        else if (so->flag("peer")) set_memory(g, "peer", "");
        else if (!so->str("policy") && !so->flag("required") && !so->str("verify"))
            return make_error(rc::kBadParameter, "option --vm-memory: path= or peer is required");
        if (auto p = so->str("policy")) {
            auto pol = snapshot::parse_policy(*p);
            if (!pol) return make_error(rc::kBadParameter, "option --vm-memory: " + pol.error().message);
            g.policy = *pol;
            asked = true;
        }
        if (so->flag("required")) g.required = asked = true;
        if (auto v = so->str("verify")) {
            auto b = verify_before_run("option --vm-memory", *v);
            if (!b) return b.error();
            g.verify_before_run = *b;
            asked = asked || *b;
        }
    }
    if (o.vtpm_host) {
        // The bridge never opens the host TPM: the old dir=/tcti= form is
        // refused with what to do instead, not silently reinterpreted.
        if (o.vtpm_host->rfind("dir=", 0) == 0 || o.vtpm_host->find(",tcti=") != std::string::npos)
            return make_error(rc::kBadParameter, "option --vtpm-host: the bridge no longer opens the host TPM; "
                                                 "run vtpm-hostd --dir HOSTDIR --tcti TCTI and pass "
                                                 "--vtpm-host socket=PATH");
        auto so = SubOpts::parse(*o.vtpm_host, {"socket"});
        if (!so) return make_error(rc::kBadParameter, "option --vtpm-host: " + so.error().message);
        auto p = so->str("socket");
        if (!p) return make_error(rc::kBadParameter, "option --vtpm-host: socket= is required");
        s.host_socket = *p;
    }
    s.vendor_ctrl = s.vendor_ctrl || o.vendor_ctrl;
    if (auto v = cfg->find("state_key"); v != cfg->end()) {
        auto b = sealed_or_none("bridge config state_key", v->second);
        if (!b) return b.error();
        s.sealed_state_key = *b;
    }
    if (o.vtpm_state_key) {
        auto b = sealed_or_none("option --vtpm-state-key", *o.vtpm_state_key);
        if (!b) return b.error();
        s.sealed_state_key = *b;
    }
    // Fail closed: a sealed state key needs the daemon that holds it and the
    // VM it belongs to, and is the only state key.
    if (s.sealed_state_key) {
        if (s.host_socket.empty())
            return make_error(rc::kBadParameter, "state_key = sealed cannot be honoured: missing vtpm-hostd "
                                                 "(--vtpm-host socket=..., or host_socket in the bridge config)");
        if (!g.vm_uuid)
            return make_error(rc::kBadParameter, "state_key = sealed cannot be honoured: missing the VM UUID "
                                                 "(--vm-uuid, or a state directory named by it)");
        if (o.key)
            return make_error(rc::kBadParameter, "state_key = sealed and --key both give a state key: use one "
                                                 "(libvirt: no <encryption> for a VM with a sealed key)");
    }
    s.enabled = !g.memory_path.empty() || g.memory_from_peer || !s.host_socket.empty();
    // Fail closed: a policy that asks for verification must have everything
    // verification needs, or the bridge does not start.
    if ((s.enabled || asked) && g.policy != snapshot::Policy::Skip) {
        std::string missing;
        auto need = [&](bool ok, const char* what) {
            if (!ok) missing += std::string(missing.empty() ? "" : "; ") + what;
        };
        need(!s.host_socket.empty(), "the host key (--vtpm-host socket=..., or host_socket in the bridge config)");
        need(g.vm_uuid.has_value(), "the VM UUID (--vm-uuid, or a state directory named by it)");
        // A patched QEMU hands its RAM digest over the vendor control channel.
        need(!g.memory_path.empty() || g.memory_from_peer || s.vendor_ctrl,
             "guest memory (--vm-memory path=...|peer, or vm_memory in the bridge config, or a patched QEMU's "
             "digest with --vtpm-vendor-ctrl)");
        // Records hold TPM 2 PCR banks: a TPM 1.2 would save without them.
        need(o.tpm2, "a TPM 2 (--tpm2): snapshot records hold TPM 2 PCR banks");
        // Guest memory is hashed only once it is known to be QEMU's: the
        // control socket's peer credentials name QEMU. TCP and CUSE carry
        // none, so every save would go without a record.
        const bool hashes_memory = !g.memory_path.empty() || g.memory_from_peer;
        need(!hashes_memory || (o.iface != Iface::Cuse && o.ctrl.type != ChannelOpts::Type::Tcp),
             "a control channel that names its peer (QEMU), to check that the guest memory is QEMU's: --ctrl "
             "type=unixio (a TCP control channel and CUSE carry no peer credentials)");
        if (!missing.empty())
            return make_error(rc::kBadParameter, "snapshot verification with policy=" +
                                                     std::string(snapshot::policy_name(g.policy)) +
                                                     " cannot be honoured: missing " + missing);
    }
    return s;
}

// The snapshot settings: options over the bridge config file (a missing
// default file is no config).
Result<SnapshotSettings> read_snapshot_settings(const BridgeOptions& o, const std::string& env_path) {
    std::string path = o.vtpm_config.value_or(env_path);
    const bool explicit_path = !path.empty();
    if (path.empty()) path = kDefaultBridgeConfig;
    std::string text;
    bool read = false;
    if (auto raw = read_whole_file(path)) {
        text.assign(raw->begin(), raw->end());
        read = true;
    } else if (explicit_path || raw.code() != rc::kRetry) {
        return make_error(rc::kFail, "bridge config " + path + ": " + raw.error().message);
    }
    auto s = resolve_snapshot_settings(o, text);
    // Named only when there is one: a file that does not exist is not where
    // the options' error is.
    if (!s) return make_error(s.code(), (read ? path + ": " : std::string()) + s.error().message);
    return s;
}

// The snapshot guard this bridge runs with, or null (exactly swtpm).
Result<std::unique_ptr<snapshot::SnapshotGuard>> make_guard(const SnapshotSettings& settings) {
    const SnapshotSettings* s = &settings;
    if (!s->enabled) return std::unique_ptr<snapshot::SnapshotGuard>{};
    // Records and vAIK quotes marshal TPM structures: the library now, so a
    // host without it stops here rather than at the first snapshot.
    if (auto r = tpm::mu::load(); !r) return make_error(r.code(), "snapshot verification: " + r.error().message);
    std::unique_ptr<snapshot::RecordSigner> signer;
    std::unique_ptr<snapshot::SnapshotLedger> ledger;
    if (!s->host_socket.empty()) {
        auto host = snapshot::connect_host_daemon(s->host_socket);
        if (!host) return make_error(rc::kFail, "--vtpm-host: " + host.error().message);
        signer = std::move(host->signer);
        ledger = std::move(host->ledger);
    }
    const auto& g = s->guard;
    VTPM_LOG_INFO("snapshot verification: memory %s, policy %s%s%s, VM %s, records signed by %s",
                  g.memory_from_peer      ? "from the control socket's peer"
                  : g.memory_path.empty() ? "none"
                                          : g.memory_path.c_str(),
                  std::string(snapshot::policy_name(g.policy)).c_str(), g.required ? " (required)" : "",
                  g.verify_before_run ? ", verify before run" : "",
                  g.vm_uuid ? format_uuid(*g.vm_uuid).c_str() : "unknown",
                  signer ? signer->describe().c_str() : "nobody (no --vtpm-host)");
    return std::make_unique<snapshot::SnapshotGuard>(g, std::move(signer), std::move(ledger));
}

}  // namespace vtpm::bridge
