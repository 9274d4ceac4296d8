// vtpm-bridge: a drop-in for `swtpm socket`. main only parses options and
// wires the parts together; everything else lives in lib/ and beside this file.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "capabilities.hpp"
#include "ctrl/dispatcher.hpp"
#include "engine/engine.hpp"
#include "options.hpp"
#include "process.hpp"
#include "seccomp_policy.hpp"
#include "server.hpp"
#include "snapshot/guard.hpp"
#include "snapshot/record_signer.hpp"
#include "snapshot_settings.hpp"
#include "sockets.hpp"
#include "store/durable_file.hpp"
#include "store/key.hpp"
#include "store/state_store.hpp"
#include "util/log.hpp"
#include "vtpm_config.h"

using namespace vtpm;
using namespace vtpm::bridge;

namespace {

int fail(const std::string& msg) {
    // Errors before logging is set up go to stderr; afterwards to the log too.
    VTPM_LOG_ERROR("%s", msg.c_str());
    if (log::fd() != 2) std::fprintf(stderr, "%s\n", msg.c_str());
    return EXIT_FAILURE;
}

std::string getenv_str(const char* n) {
    const char* v = std::getenv(n);
    return v ? v : "";
}

// Sockets the process created and must unlink at exit.
struct UnlinkAtExit {
    std::vector<std::string> paths;
    ~UnlinkAtExit() {
        for (const auto& p : paths) ::unlink(p.c_str());
    }
};

Result<void> open_channels(const BridgeOptions& o, ServerConfig& sc, UnlinkAtExit& created) {
    const auto& c = o.ctrl;
    if (c.type == ChannelOpts::Type::Unix) {
        if (c.clientfd >= 0) {
            if (!is_socket(c.clientfd)) return make_error(rc::kFail, "--ctrl clientfd= is not a socket");
            sc.ctrl_client.reset(c.clientfd);
        } else if (c.fd >= 0) {
            if (!is_socket(c.fd)) return make_error(rc::kFail, "--ctrl fd= is not a socket");
            sc.ctrl_listen.reset(c.fd);
        } else {
            auto l = listen_unix(c.path, c.mode, c.uid, c.gid);
            if (!l) return l.error();
            sc.ctrl_listen = std::move(*l);
            created.paths.push_back(c.path);
        }
    } else if (c.type == ChannelOpts::Type::Tcp) {
        if (c.fd >= 0) {
            sc.ctrl_listen.reset(c.fd);
        } else {
            auto l = listen_tcp(c.bindaddr, *c.port, c.ifname);
            if (!l) return make_error(rc::kFail, "--ctrl: " + l.error().message);
            sc.ctrl_listen = std::move(*l);
        }
    }
    sc.ctrl_terminate = c.terminate;

    const auto& s = o.server;
    sc.data_disconnect = s.disconnect;
    sc.terminate = o.terminate;
    if (o.data_fd >= 0) {
        sc.data_client.reset(o.data_fd);
        sc.terminate = true;
    } else if (s.type == ChannelOpts::Type::Tcp) {
        if (s.fd >= 0) {
            // swtpm_setup passes one end of a socketpair as "type=tcp,fd=".
            if (!is_socket(s.fd)) return make_error(rc::kFail, "--server fd= is not a socket");
            sc.data_client.reset(s.fd);
            sc.terminate = true;
        } else {
            auto l = listen_tcp(s.bindaddr, *s.port, s.ifname);
            if (!l) return make_error(rc::kFail, "--server: " + l.error().message);
            sc.data_listen = std::move(*l);
        }
    } else if (s.type == ChannelOpts::Type::Unix) {
        if (s.fd >= 0) {
            if (!is_socket(s.fd)) return make_error(rc::kFail, "--server fd= is not a socket");
            if (is_listening(s.fd)) sc.data_listen.reset(s.fd);
            else {
                sc.data_client.reset(s.fd);
                sc.terminate = true;
            }
        } else {
            auto l = listen_unix(s.path, s.mode, s.uid, s.gid);
            if (!l) return l.error();
            sc.data_listen = std::move(*l);
            created.paths.push_back(s.path);
        }
    }
    return {};
}

// The snapshot settings: options over the bridge config file (a missing
// default file is no config).
Result<SnapshotSettings> read_snapshot_settings(const BridgeOptions& o) {
    std::string path = o.vtpm_config.value_or(getenv_str("VTPM_BRIDGE_CONFIG"));
    const bool explicit_path = !path.empty();
    if (path.empty()) path = kDefaultBridgeConfig;
    std::string text;
    if (auto raw = store::read_whole_file(path)) text.assign(raw->begin(), raw->end());
    else if (explicit_path || raw.code() != rc::kRetry)
        return make_error(rc::kFail, "bridge config " + path + ": " + raw.error().message);
    auto s = resolve_snapshot_settings(o, text);
    if (!s) return make_error(s.code(), path + ": " + s.error().message);
    return s;
}

// The snapshot guard this bridge runs with, or null (exactly swtpm).
Result<std::unique_ptr<snapshot::SnapshotGuard>> make_guard(const SnapshotSettings& settings) {
    const SnapshotSettings* s = &settings;
    if (!s->enabled) return std::unique_ptr<snapshot::SnapshotGuard>{};
    std::unique_ptr<snapshot::RecordSigner> signer;
    std::optional<snapshot::Ledger> ledger;
    if (!s->host_dir.empty()) {
        auto sg = snapshot::open_host_signer(s->host_dir, s->host_tcti);
        if (!sg) return make_error(rc::kFail, "--vtpm-host: " + sg.error().message);
        signer = std::move(*sg);
        ledger.emplace(s->host_dir);
    }
    const auto& g = s->guard;
    VTPM_LOG_INFO("snapshot verification: memory %s, policy %s%s, VM %s, records signed by %s",
                  g.memory_from_peer ? "from the control socket's peer" : g.memory_path.empty() ? "none" : g.memory_path.c_str(),
                  std::string(snapshot::policy_name(g.policy)).c_str(), g.required ? " (required)" : "",
                  g.vm_uuid ? snapshot::format_uuid(*g.vm_uuid).c_str() : "unknown",
                  signer ? signer->describe().c_str() : "nobody (no --vtpm-host)");
    return std::make_unique<snapshot::SnapshotGuard>(g, std::move(signer), std::move(ledger));
}

int run_socket(const std::vector<std::string>& args, const std::string& prog) {
    auto parsed = parse_options(args, getenv_str("TPM_PATH"), getenv_str("TPM_PORT"));
    if (!parsed) {
        std::fprintf(stderr, "%s\n", parsed.error().message.c_str());
        return EXIT_FAILURE;
    }
    BridgeOptions& o = *parsed;
    if (o.help) {
        std::fputs(usage(prog).c_str(), stdout);
        return EXIT_SUCCESS;
    }
    if (o.version) {
        std::printf("libvtpm vtpm-bridge %s (swtpm %s compatible)\n", VTPM_VERSION, VTPM_SWTPM_COMPAT_VERSION);
        return EXIT_SUCCESS;
    }
    if (o.runas) {
        if (auto r = switch_user(*o.runas); !r) return fail(r.error().message);
    }
    auto snap = read_snapshot_settings(o);
    if (!snap) {
        std::fprintf(stderr, "%s\n", snap.error().message.c_str());
        return EXIT_FAILURE;
    }
    if (o.log && !o.log->level && snap->log_level) o.log->level = snap->log_level;
    if (auto r = setup_logging(o.log); !r) {
        std::fprintf(stderr, "%s\n", r.error().message.c_str());
        return EXIT_FAILURE;
    }
    if (o.print_capabilities) {
        std::printf("%s\n", capabilities_json(o.tpm2).c_str());
        return EXIT_SUCCESS;
    }

    UnlinkAtExit created;
    ServerConfig sc;
    if (!o.print_states) {
        if (auto r = open_channels(o, sc, created); !r) return fail(r.error().message);
    }

    if (o.state_uri.empty())
        return fail("no TPM state location given: use --tpmstate dir=<dir> or set TPM_PATH");
    std::optional<store::Key> state_key, migration_key;
    if (o.key) {
        auto k = store::load_key_option(*o.key);
        if (!k) return fail("--key: " + k.error().message);
        state_key = std::move(*k);
    }
    if (o.migration_key) {
        auto k = store::load_key_option(*o.migration_key);
        if (!k) return fail("--migration-key: " + k.error().message);
        migration_key = std::move(*k);
    }
    auto st = store::open_store(o.state_uri, o.tpm2, o.state_mode, std::move(state_key));
    if (!st) return fail("--tpmstate: " + st.error().message);

    if (o.print_states) {
        if (auto l = (*st)->lock(); !l) return fail(l.error().message);
        auto entries = (*st)->list();
        if (!entries) return fail(entries.error().message);
        std::fputs(store::format_print_states(*entries).c_str(), stdout);
        return EXIT_SUCCESS;
    }

    if (o.daemon) {
        if (auto r = daemonize(); !r) return fail(r.error().message);
    }
    auto pid = PidFile::write(o.pid_file, o.pid_fd);
    if (!pid) return fail(pid.error().message);

    engine::EngineConfig ec;
    ec.version = o.tpm2 ? engine::TpmVersion::V2 : engine::TpmVersion::V1_2;
    ec.auto_shutdown = !o.disable_auto_shutdown;
    ec.reject_locality_4 = o.reject_locality_4;
    ec.allow_set_locality = o.allow_set_locality;
    auto eng = engine::Engine::create(ec, std::move(*st));
    if (!eng) return fail(eng.error().message);

    auto guard = make_guard(*snap);
    if (!guard) return fail(guard.error().message);

    ctrl::DispatcherConfig dc;
    dc.migration_key = std::move(migration_key);
    dc.release_lock_outgoing = o.release_lock_outgoing;
    dc.vendor_tpm_command = snap->vendor_ctrl;
    dc.snapshot = guard->get();
    ctrl::Dispatcher dispatcher(**eng, std::move(dc));

    if (!o.need_init) {
        if (auto r = (*eng)->init(false); !r) return fail("could not initialise the TPM: " + r.error().message);
        if (o.startup_type >= 0) {
            if (auto r = (*eng)->startup(o.startup_type); !r) return fail(r.error().message);
        }
    }

    Server server(**eng, dispatcher, std::move(sc));
    if (auto r = install_seccomp(o.seccomp_action); !r) return fail("--seccomp: " + r.error().message);
    daemon_ready();
    VTPM_LOG_INFO("vtpm-bridge %s serving (%s)", VTPM_VERSION, o.tpm2 ? "TPM 2.0" : "TPM 1.2");
    server.run();
    return EXIT_SUCCESS;
}

}  // namespace

int main(int argc, char** argv) {
    std::string prog = argc > 0 ? argv[0] : "vtpm-bridge";
    if (argc < 2) {
        std::fputs(usage(prog).c_str(), stderr);
        return EXIT_FAILURE;
    }
    std::string iface = argv[1];
    if (iface == "-v" || iface == "--version") {
        std::printf("libvtpm vtpm-bridge %s (swtpm %s compatible)\n", VTPM_VERSION, VTPM_SWTPM_COMPAT_VERSION);
        return EXIT_SUCCESS;
    }
    if (iface == "-h" || iface == "--help") {
        std::fputs(usage(prog).c_str(), stdout);
        return EXIT_SUCCESS;
    }
    if (iface != "socket") {
        std::fprintf(stderr, "Unsupported TPM interface type '%s'.\n%s", iface.c_str(), usage(prog).c_str());
        return EXIT_FAILURE;
    }
    return run_socket(std::vector<std::string>(argv + 2, argv + argc), prog);
}
