// vtpm-bridge: a drop-in for `swtpm socket`. main only parses options and
// wires the parts together: the core (lib/core), its blob filters
// (lib/snapshot) and the socket front end (socket/).
#include <dirent.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <set>
#include <string>
#include <vector>

#include "bridge/cuse/cuse_main.hpp"
#include "bridge/event_loop.hpp"
#include "bridge/options.hpp"
#include "bridge/seccomp_policy.hpp"
#include "bridge/snapshot_settings.hpp"
#include "bridge/state_key.hpp"
#include "bridge/socket/admin.hpp"
#include "bridge/socket/channels.hpp"
#include "bridge/socket/server.hpp"
#include "common/capabilities.hpp"
#include "common/process.hpp"
#include "core/dispatcher.hpp"
#include "engine/engine.hpp"
#include "snapshot/commands.hpp"
#include "store/key.hpp"
#include "store/state_store.hpp"
#include "util/kernel_random.hpp"
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

// At exit the state file must be current: it is what Debian's swtpm, or whoever
// takes the directory next, reads. The destructors would only log a write that
// fails here (a full disk, a directory made read-only) and exit 0. The
// dispatcher powers off, so the snapshot guard settles a restore first.
int finish_state(core::Dispatcher& d) {
    d.stop();
    engine::Engine& e = d.engine();
    if (auto r = e.flush_deferred(); !r) return fail(r.error().message);
    if (auto r = e.store().checkpoint(); !r)
        return fail(r.error().message + "; the newest state is only in the journal beside it, which vtpm-bridge " +
                    "reads at its next start and Debian's swtpm does not");
    return EXIT_SUCCESS;
}

std::string getenv_str(const char* n) {
    const char* v = std::getenv(n);
    return v ? v : "";
}

// The descriptors the command line names: everything else inherited is
// closed at start. swtpm_setup spawns swtpm with its own ends of the
// socketpairs still open; a bridge that kept them would never see its
// parent go away and would linger holding the state's lock.
std::set<int> named_fds(const BridgeOptions& o) {
    std::set<int> keep{o.server.fd, o.ctrl.fd, o.ctrl.clientfd, o.data_fd, o.pid_fd};
    if (o.log) keep.insert(o.log->fd);
    for (const auto* key : {&o.key, &o.migration_key})
        if (*key)
            if (auto fd = store::key_option_fd(**key)) keep.insert(*fd);
    return keep;
}

void close_unnamed_fds(const std::set<int>& keep) {
    std::vector<int> stray;
    if (DIR* d = ::opendir("/proc/self/fd")) {
        const int self = ::dirfd(d);
        while (dirent* e = ::readdir(d)) {
            char* end = nullptr;
            const long fd = std::strtol(e->d_name, &end, 10);
            if (*end || fd < 3 || fd == self || keep.count(static_cast<int>(fd))) continue;
            stray.push_back(static_cast<int>(fd));
        }
        ::closedir(d);
    }
    for (int fd : stray) ::close(fd);
    if (!stray.empty()) VTPM_LOG_DEBUG("closed %zu inherited descriptors the command line does not name", stray.size());
}

int run_bridge(const std::vector<std::string>& args, const std::string& prog, Iface iface) {
    auto parsed = parse_options(args, getenv_str("TPM_PATH"), getenv_str("TPM_PORT"), iface);
    if (!parsed) {
        std::fprintf(stderr, "%s\n", parsed.error().message.c_str());
        return EXIT_FAILURE;
    }
    BridgeOptions& o = *parsed;
    close_unnamed_fds(named_fds(o));
    if (o.help) {
        std::fputs(usage(prog).c_str(), stdout);
        return EXIT_SUCCESS;
    }
    if (o.version) {
        std::printf("libvtpm vtpm-bridge %s (swtpm %s compatible)\n", VTPM_VERSION, VTPM_SWTPM_COMPAT_VERSION);
        return EXIT_SUCCESS;
    }
    // cuse: as swtpm, the user changes once the device exists (/dev/cuse is root's).
    if (o.runas && o.iface != Iface::Cuse) {
        if (auto r = switch_user(*o.runas); !r) return fail(r.error().message);
    }
    if (o.iface == Iface::Cuse && !o.print_capabilities && !o.print_states && o.cuse_name.empty())
        return fail("cuse needs the device's name: -n <name>");
    if (auto r = harden_process(); !r) return fail(r.error().message);
    if (auto r = use_kernel_random_for_openssl(); !r) return fail(r.error().message);
    auto snap = read_snapshot_settings(o, getenv_str("VTPM_BRIDGE_CONFIG"));
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

    // Snapshot verification is checked before anything is opened or created:
    // a guard that cannot be built stops the bridge with nothing touched.
    auto guard = o.print_states ? Result<std::unique_ptr<snapshot::SnapshotGuard>>(nullptr) : make_guard(*snap);
    if (!guard) return fail(guard.error().message);

    // The sealed state key (and the adoption of a plaintext state) before any
    // socket is opened: once QEMU can connect, the store is ready.
    std::optional<store::Key> sealed;
    if (snap->sealed_state_key && !o.print_states && !o.state_uri.empty()) {
        auto k = sealed_state_key(*snap, o.state_uri, o.tpm2, o.state_mode);
        if (!k) return fail(k.error().message);
        sealed = std::move(*k);
    }

    UnlinkAtExit created;
    ServerConfig sc;
    // The pid file as soon as the channels are open, as swtpm: swtpm_setup
    // waits only about 5 s for it.
    std::optional<PidFile> pid;
    if (!o.print_states && o.iface != Iface::Cuse) {
        if (auto r = open_channels(o, sc, created); !r) return fail(r.error().message);
        if (o.daemon) {
            if (auto r = daemonize(); !r) return fail(r.error().message);
        }
        auto p = PidFile::write(o.pid_file, o.pid_fd);
        if (!p) return fail(p.error().message);
        pid.emplace(std::move(*p));
    }

    if (o.state_uri.empty())
        return fail("no TPM state location given: use --tpmstate dir=<dir> or set TPM_PATH");
    std::optional<store::Key> state_key, migration_key;
    if (o.key) {
        auto k = store::load_key_option(*o.key);
        if (!k) return fail("--key: " + k.error().message);
        state_key = std::move(*k);
    } else if (sealed) {
        state_key = std::move(*sealed);
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


    engine::EngineConfig ec;
    ec.version = o.tpm2 ? engine::TpmVersion::V2 : engine::TpmVersion::V1_2;
    ec.auto_shutdown = !o.disable_auto_shutdown;
    // With snapshot verification vPCRs come back only through a checked
    // restore, never from a TPM2_Shutdown(SU_STATE) left on disk.
    ec.clear_at_power_off = *guard && (*guard)->config().policy != snapshot::Policy::Skip;
    ec.reject_locality_4 = o.reject_locality_4;
    ec.allow_set_locality = o.allow_set_locality;
    auto eng = engine::Engine::create(ec, std::move(*st));
    if (!eng) return fail(eng.error().message);

    core::DispatcherConfig dc;
    dc.migration_key = std::move(migration_key);
    dc.release_lock_outgoing = o.release_lock_outgoing;
    dc.vendor_commands = snap->vendor_ctrl;
    // CMD_LOCK_STORAGE (swtpm 0.8) serves QEMU's TPM 2 shared-storage
    // migration; a TPM 1.2 answers as swtpm 0.7.1 (capabilities 0x7fff).
    dc.lock_storage = o.tpm2;
    core::Dispatcher dispatcher(**eng, std::move(dc));
    if (*guard) snapshot::attach(dispatcher, **guard);

    if (!o.need_init) {
        if (auto r = (*eng)->init(false); !r) return fail("could not initialise the TPM: " + r.error().message);
        if (o.startup_type >= 0) {
            if (auto r = (*eng)->startup(o.startup_type); !r) return fail(r.error().message);
        }
    }

    auto loop = EventLoop::create();
    if (!loop) return fail(loop.error().message);
    // The admin socket: CMD_VTPM_VERIFY_RAM from a paused-restore driver.
    std::unique_ptr<AdminSocket> admin;
    if (!snap->admin_socket.empty()) {
        if (!*guard)
            return fail("the admin socket " + snap->admin_socket + " needs snapshot verification (--vm-memory)");
        auto a = AdminSocket::open(snap->admin_socket, [&guard, &dispatcher] {
            return snapshot::verify_reply(**guard, dispatcher.engine());
        }, **loop);
        if (!a) return fail(a.error().message);
        admin = std::move(*a);
    }

    if (o.iface == Iface::Cuse) {
        CuseDevice device(dispatcher);
        CuseOptions co{o.cuse_name, o.cuse_major, o.cuse_minor};
        // Once /dev/NAME exists and the process runs detached: as swtpm cuse.
        auto ready = [&o, &pid]() -> Result<void> {
            auto p = PidFile::write(o.pid_file, o.pid_fd);
            if (!p) return p.error();
            pid.emplace(std::move(*p));
            if (o.runas)
                if (auto r = switch_user(*o.runas); !r) return r.error();
            if (auto r = install_seccomp(o.seccomp_action); !r) return make_error(r.code(), "--seccomp: " + r.error().message);
            VTPM_LOG_INFO("vtpm-bridge %s serving /dev/%s (%s)", VTPM_VERSION, o.cuse_name.c_str(),
                          o.tpm2 ? "TPM 2.0" : "TPM 1.2");
            return {};
        };
        if (auto r = serve_cuse(device, co, ready); !r) return fail(r.error().message);
        return finish_state(dispatcher);
    }
    Server server(dispatcher, std::move(sc), **loop);
    if (auto r = install_seccomp(o.seccomp_action); !r) return fail("--seccomp: " + r.error().message);
    daemon_ready();
    VTPM_LOG_INFO("vtpm-bridge %s serving (%s)", VTPM_VERSION, o.tpm2 ? "TPM 2.0" : "TPM 1.2");
    server.run();
    return finish_state(dispatcher);
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
    if (iface == "cuse" && !cuse_built()) {
        std::fprintf(stderr, "The cuse interface needs a vtpm-bridge built with libfuse3: use socket or chardev.\n");
        return EXIT_FAILURE;
    }
    if (iface != "socket" && iface != "chardev" && iface != "cuse") {
        std::fprintf(stderr, "Unsupported TPM interface type '%s'.\n%s", iface.c_str(), usage(prog).c_str());
        return EXIT_FAILURE;
    }
    return run_bridge(std::vector<std::string>(argv + 2, argv + argc), prog,
                      iface == "chardev" ? Iface::Chardev : iface == "cuse" ? Iface::Cuse : Iface::Socket);
}
