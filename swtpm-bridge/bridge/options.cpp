#include "bridge/options.hpp"

#include <algorithm>
#include <charconv>
#include <cstdlib>

#include "util/subopts.hpp"

namespace vtpm::bridge {
namespace {

struct LongOpt {
    std::string_view name;
    bool has_arg;
    char id;  // short option char or internal id
};

// Long options as swtpm socket knows them; getopt_long allows unambiguous
// abbreviations, and so do we.
constexpr LongOpt kLongOpts[] = {
    {"daemon", false, 'd'},        {"help", false, 'h'},          {"port", true, 'p'},
    {"fd", true, 'f'},             {"server", true, 'c'},         {"runas", true, 'r'},
    {"terminate", false, 't'},     {"locality", true, 'L'},       {"log", true, 'l'},
    {"key", true, 'k'},            {"migration-key", true, 'K'},  {"pid", true, 'P'},
    {"tpmstate", true, 's'},       {"ctrl", true, 'C'},           {"flags", true, 'F'},
    {"tpm2", false, '2'},          {"seccomp", true, 'S'},        {"migration", true, 'i'},
    {"print-capabilities", false, 'a'}, {"print-states", false, 'e'}, {"version", false, 'v'},
    {"vtpm-vendor-ctrl", false, 'V'}, {"vm-memory", true, 'M'},  {"vm-uuid", true, 'U'},
    {"vtpm-host", true, 'H'},      {"vtpm-config", true, 'G'},    {"vtpm-admin-socket", true, 'A'},
    {"vtpm-state-key", true, 'E'},
    {"chardev", true, 'X'},        {"vtpm-proxy", false, 'Y'},
    {"name", true, 'n'},           {"maj", true, 'J'},            {"min", true, 'N'},
};

// What each front end does not know (swtpm.c, swtpm_chardev.c, cuse_tpm.c
// option tables).
constexpr char kNotSocket[] = {'X', 'Y', 'n', 'J', 'N'};                 // chardev's and cuse's own
constexpr char kNotChardev[] = {'p', 'c', 't', 'i', 'n', 'J', 'N'};      // socket's and cuse's own
constexpr char kNotCuse[] = {'p', 'c', 't', 'i', 'f', 'C', 'd', 'X', 'Y'};  // socket's and chardev's

// Options swtpm has that we do not implement: refused by name, never ignored.
constexpr std::string_view kUnsupported[] = {"chroot", "profile", "print-profiles", "print-info", "pcap"};

Error opt_error(std::string_view opt, const std::string& msg) {
    return make_error(rc::kBadParameter, "option --" + std::string(opt) + ": " + msg);
}

// swtpm refuses the standard streams for the data channel; it writes a log
// to any descriptor open for writing, stdout included (`--log fd=1`; its
// fd=2 fails: it closes stderr before it checks it): `std_ok` allows 1 and 2.
// In --ctrl, --server and --log, swtpm reads fd=-1 as no fd= at all
// (`minus_one_absent`: -1 is returned); a number is read as strtol reads it.
Result<int> parse_fd(std::string_view opt, const std::string& s, bool std_ok = false, bool minus_one_absent = false) {
    const std::string_view d = strtol_digits(s);
    int v = -1;
    auto [p, ec] = std::from_chars(d.data(), d.data() + d.size(), v, 10);
    if (ec == std::errc{} && p == d.data() + d.size() && v == -1 && minus_one_absent) return -1;
    if (ec != std::errc{} || p != d.data() + d.size() || v < 0)
        return opt_error(opt, "invalid file descriptor '" + s + "'");
    if (v < 3 && !(std_ok && v > 0))
        return opt_error(opt, "file descriptor " + s + " is a standard stream and cannot be used");
    return v;
}

Result<void> parse_channel(std::string_view opt, const std::string& value, bool is_ctrl, ChannelOpts& ch) {
    auto so = SubOpts::parse(value, {"type", "port", "bindaddr", "ifname", "path", "fd", "clientfd", "mode", "uid",
                                     "gid", "disconnect", "terminate"});
    if (!so) return opt_error(opt, so.error().message);
    auto type = so->str("type");
    if (!type) {
        if (is_ctrl) return opt_error(opt, "type= is required");
        type = "tcp";
    }
    if (*type == "tcp") ch.type = ChannelOpts::Type::Tcp;
    else if (*type == "unixio") ch.type = ChannelOpts::Type::Unix;
    else return opt_error(opt, "unsupported type '" + *type + "'");
    if (auto p = so->integer("port"); !p) return opt_error(opt, p.error().message);
    else if (*p) {
        if (**p < 0 || **p > 65535) return opt_error(opt, "port out of range");
        ch.port = static_cast<unsigned>(**p);
    }
    if (auto b = so->str("bindaddr")) ch.bindaddr = *b;
    if (auto i = so->str("ifname")) ch.ifname = *i;
    if (auto p = so->str("path")) ch.path = *p;
    if (auto f = so->str("fd")) {
        auto v = parse_fd(opt, *f, false, true);
        if (!v) return v.error();
        ch.fd = *v;
    }
    if (auto f = so->str("clientfd")) {
        if (!is_ctrl) return opt_error(opt, "clientfd= is only valid for --ctrl");
        auto v = parse_fd(opt, *f, false, true);
        if (!v) return v.error();
        ch.clientfd = *v;
    }
    auto m = so->mode("mode");
    if (!m) return opt_error(opt, m.error().message);
    if (*m) ch.mode = **m;
    auto u = so->uid("uid");
    if (!u) return opt_error(opt, u.error().message);
    ch.uid = *u;
    auto g = so->gid("gid");
    if (!g) return opt_error(opt, g.error().message);
    ch.gid = *g;
    ch.disconnect = so->flag("disconnect");
    if (so->has("terminate") && !is_ctrl) return opt_error(opt, "terminate is only valid for --ctrl");
    ch.terminate = so->flag("terminate");
    if (ch.type == ChannelOpts::Type::Unix && ch.path.empty() && ch.fd < 0 && ch.clientfd < 0)
        return opt_error(opt, "type=unixio needs path=, fd= or clientfd=");
    return {};
}

}  // namespace

Result<BridgeOptions> parse_options(const std::vector<std::string>& args, const std::string& env_tpm_path,
                                    const std::string& env_tpm_port, Iface iface) {
    BridgeOptions o;
    o.iface = iface;
    std::optional<std::string> tpmstate, server, ctrl, log, locality, flags, migration, seccomp, pid;
    std::optional<std::string> port;
    for (size_t i = 0; i < args.size(); ++i) {
        const std::string& a = args[i];
        char id = 0;
        std::string value;
        std::string name;
        if (a.size() > 2 && a.compare(0, 2, "--") == 0) {
            std::string body = a.substr(2);
            std::optional<std::string> inline_val;
            if (auto eq = body.find('='); eq != std::string::npos) {
                inline_val = body.substr(eq + 1);
                body = body.substr(0, eq);
            }
            if (std::find(std::begin(kUnsupported), std::end(kUnsupported), body) != std::end(kUnsupported))
                return make_error(rc::kBadParameter,
                                  "option --" + body + " is not supported by this swtpm replacement");
            const LongOpt* match = nullptr;
            int matches = 0;
            for (const auto& lo : kLongOpts) {
                if (lo.name == body) { match = &lo; matches = 1; break; }
                if (lo.name.substr(0, body.size()) == body) { match = &lo; ++matches; }
            }
            if (!match) return make_error(rc::kBadParameter, "unrecognized option '--" + body + "'");
            if (matches > 1) return make_error(rc::kBadParameter, "option '--" + body + "' is ambiguous");
            id = match->id;
            name = std::string(match->name);
            if (match->has_arg) {
                if (inline_val) value = *inline_val;
                else if (i + 1 < args.size()) value = args[++i];
                else return make_error(rc::kBadParameter, "option '--" + name + "' requires an argument");
            } else if (inline_val) {
                return make_error(rc::kBadParameter, "option '--" + name + "' doesn't allow an argument");
            }
        } else if (a.size() >= 2 && a[0] == '-' && a[1] != '-') {
            // Short options: -d -h -t, and -p/-f/-r (chardev: -c/-f/-r) with an argument.
            id = a[1];
            name = std::string(1, id);
            if (std::string_view("dht").find(id) != std::string_view::npos) {
                if (a.size() > 2) return make_error(rc::kBadParameter, "invalid option '" + a + "'");
            } else if (std::string_view(iface == Iface::Chardev ? "cfr" : iface == Iface::Cuse ? "nMmr" : "pfr")
                           .find(id) != std::string_view::npos) {
                if (id == 'c') id = 'X';
                if (id == 'M') id = 'J';
                if (id == 'm') id = 'N';
                if (a.size() > 2) value = a.substr(2);
                else if (i + 1 < args.size()) value = args[++i];
                else return make_error(rc::kBadParameter, std::string("option requires an argument -- '") + id + "'");
            } else {
                return make_error(rc::kBadParameter, std::string("invalid option -- '") + id + "'");
            }
        } else {
            return make_error(rc::kBadParameter, "Unknown parameter '" + a + "'");
        }
        const std::string_view foreign = iface == Iface::Socket    ? std::string_view(kNotSocket, sizeof kNotSocket)
                                         : iface == Iface::Chardev ? std::string_view(kNotChardev, sizeof kNotChardev)
                                                                   : std::string_view(kNotCuse, sizeof kNotCuse);
        if (foreign.find(id) != std::string_view::npos)
            return make_error(rc::kBadParameter, "unrecognized option '" + a + "' (not a " +
                                                     (iface == Iface::Socket    ? "socket"
                                                      : iface == Iface::Chardev ? "chardev"
                                                                                : "cuse") +
                                                     " option)");
        // The last occurrence of an option wins, as with swtpm.
        switch (id) {
        case 'd': o.daemon = true; break;
        case 'h': o.help = true; break;
        case 'v': o.version = true; break;
        case 'p': port = value; break;
        case 'f': {
            auto v = parse_fd("fd", value);
            if (!v) return v.error();
            o.data_fd = *v;
            break;
        }
        case 'c': server = value; break;
        case 'X': o.chardev = value; break;
        case 'n': o.cuse_name = value; break;
        case 'J':
        case 'N': {
            unsigned v = 0;
            auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), v, 10);
            if (ec != std::errc{} || p != value.data() + value.size() || v > 65535)
                return opt_error(id == 'J' ? "maj" : "min", "not a device number (0-65535): '" + value + "'");
            (id == 'J' ? o.cuse_major : o.cuse_minor) = v;
            break;
        }
        case 'Y': o.vtpm_proxy = true; break;
        case 'r': o.runas = value; break;
        case 't': o.terminate = true; break;
        case 'L': locality = value; break;
        case 'l': log = value; break;
        case 'k': o.key = value; break;
        case 'K': o.migration_key = value; break;
        case 'P': pid = value; break;
        case 's': tpmstate = value; break;
        case 'C': ctrl = value; break;
        case 'F': flags = value; break;
        case '2': o.tpm2 = true; break;
        case 'S': seccomp = value; break;
        case 'i': migration = value; break;
        case 'a': o.print_capabilities = true; break;
        case 'V': o.vendor_ctrl = true; break;
        case 'M': o.vm_memory = value; break;
        case 'U': o.vm_uuid = value; break;
        case 'H': o.vtpm_host = value; break;
        case 'G': o.vtpm_config = value; break;
        case 'A': o.vtpm_admin_socket = value; break;
        case 'E': o.vtpm_state_key = value; break;
        case 'e': o.print_states = true; break;
        default: return make_error(rc::kBadParameter, "unhandled option " + name);
        }
    }

    if (port) {
        unsigned long p = std::strtoul(port->c_str(), nullptr, 0);
        if (p > 65535) return opt_error("port", "port out of range: " + *port);
        o.server.type = ChannelOpts::Type::Tcp;
        o.server.port = static_cast<unsigned>(p);
        o.server.disconnect = true;
    }
    if (server) {
        o.server = ChannelOpts{};
        if (auto r = parse_channel("server", *server, false, o.server); !r) return r.error();
        if (o.server.type == ChannelOpts::Type::Tcp && !o.server.port && o.server.fd < 0) {
            if (env_tpm_port.empty()) return opt_error("server", "no port given and TPM_PORT is not set");
            o.server.port = static_cast<unsigned>(std::strtoul(env_tpm_port.c_str(), nullptr, 0));
        }
    }
    if (ctrl) {
        if (auto r = parse_channel("ctrl", *ctrl, true, o.ctrl); !r) return r.error();
        if (o.ctrl.type == ChannelOpts::Type::Tcp && !o.ctrl.port && o.ctrl.fd < 0)
            return opt_error("ctrl", "type=tcp needs port= or fd=");
    }
    if (tpmstate) {
        auto so = SubOpts::parse(*tpmstate, {"dir", "mode", "backend-uri"});
        if (!so) return opt_error("tpmstate", so.error().message);
        if (auto d = so->str("dir")) o.state_uri = "dir://" + *d;
        else if (auto u = so->str("backend-uri")) o.state_uri = *u;
        else return opt_error("tpmstate", "dir= or backend-uri= is required");
        auto m = so->mode("mode");
        if (!m) return opt_error("tpmstate", m.error().message);
        if (*m) o.state_mode = **m;
    } else if (!env_tpm_path.empty()) {
        o.state_uri = "dir://" + env_tpm_path;
    }
    if (log) {
        auto so = SubOpts::parse(*log, {"file", "fd", "level", "prefix", "truncate"});
        if (!so) return opt_error("log", so.error().message);
        LogOpts l;
        if (auto f = so->str("file")) l.file = *f;
        if (auto f = so->str("fd")) {
            auto v = parse_fd("log", *f, true, true);
            if (!v) return v.error();
            l.fd = *v;
        }
        auto lv = so->integer("level");
        if (!lv) return opt_error("log", lv.error().message);
        if (*lv) {
            // swtpm keeps the level's low 32 bits, as an unsigned: level=-1 is everything.
            l.level = static_cast<unsigned>(**lv);
        }
        if (auto p = so->str("prefix")) l.prefix = *p;
        l.truncate = so->flag("truncate");
        o.log = l;
    }
    if (pid) {
        auto so = SubOpts::parse(*pid, {"file", "fd"});
        if (!so) return opt_error("pid", so.error().message);
        if (auto f = so->str("file")) o.pid_file = *f;
        else if (auto f = so->str("fd")) {
            auto v = parse_fd("pid", *f);
            if (!v) return v.error();
            o.pid_fd = *v;
        } else {
            return opt_error("pid", "file= or fd= is required");
        }
    }
    if (locality) {
        auto so = SubOpts::parse(*locality, {"reject-locality-4", "allow-set-locality"});
        if (!so) return opt_error("locality", so.error().message);
        o.reject_locality_4 = so->flag("reject-locality-4");
        o.allow_set_locality = so->flag("allow-set-locality");
    }
    if (flags) {
        auto so = SubOpts::parse(*flags, {"not-need-init", "startup-clear", "startup-state", "startup-deactivated",
                                          "startup-none", "disable-auto-shutdown"});
        if (!so) return opt_error("flags", so.error().message);
        if (so->flag("not-need-init")) o.need_init = false;
        // Precedence as in swtpm: clear > state > deactivated > none.
        if (so->flag("startup-clear")) o.startup_type = 0;
        else if (so->flag("startup-state")) o.startup_type = 1;
        else if (so->flag("startup-deactivated")) o.startup_type = 2;
        else if (so->flag("startup-none")) o.startup_type = -1;
        if (so->has("startup-clear") || so->has("startup-state") || so->has("startup-deactivated") ||
            so->has("startup-none"))
            o.need_init = false;
        o.disable_auto_shutdown = so->flag("disable-auto-shutdown");
    }
    if (migration) {
        auto so = SubOpts::parse(*migration, {"incoming", "release-lock-outgoing"});
        if (!so) return opt_error("migration", so.error().message);
        o.incoming_migration = so->flag("incoming");
        o.release_lock_outgoing = so->flag("release-lock-outgoing");
    }
    if (seccomp) {
        auto so = SubOpts::parse(*seccomp, {"action"});
        if (!so) return opt_error("seccomp", so.error().message);
        o.seccomp_action = so->str("action").value_or("kill");
        if (o.seccomp_action != "none" && o.seccomp_action != "kill" && o.seccomp_action != "log")
            return opt_error("seccomp", "unknown action '" + o.seccomp_action + "'");
    }
    return o;
}

std::string usage(const std::string& prog) {
    return "Usage: " + prog + " socket [options]\n"
           "       " + prog + " chardev (-c <device> | -f <fd> | --vtpm-proxy) [options]\n"
           "       " + prog + " cuse -n <name> [-M <major>] [-m <minor>] [options]\n"
R"(
A vTPM server that speaks swtpm's control and data channels (libvtpm).

chardev: the data channel is a character device (-c|--chardev), an open fd
(-f|--fd) or a new /dev/tpmN of the kernel's vTPM proxy (--vtpm-proxy); the
control channel is --ctrl; --port, --server, --terminate and --migration are
socket options.
cuse: -n|--name <name> makes /dev/<name> (-M|--maj, -m|--min: its numbers);
control by its ioctls, data by read/write; needs /dev/cuse and libfuse3.

  -p|--port <port>  TCP data port; implies --server type=tcp,disconnect
  -f|--fd <fd>      use an already connected data socket (implies --terminate)
  -t|--terminate    exit when the data connection is lost
  -d|--daemon       run in the background
  --server [type=tcp][,port=<p>][,bindaddr=<a>][,ifname=<if>][,fd=<fd>][,disconnect]
  --server type=unixio[,path=<p>][,fd=<fd>][,mode=<0oct>][,uid=<u>][,gid=<g>]
                    data channel server
  --ctrl type=[unixio|tcp][,path=<p>][,port=<p>][,bindaddr=<a>][,ifname=<if>]
         [,fd=<fd>|clientfd=<fd>][,mode=<0oct>][,uid=<u>][,gid=<g>][,terminate]
                    control channel
  --tpmstate dir=<dir>|backend-uri=dir://<dir>[,mode=<0oct>]
                    where the TPM state lives (default: $TPM_PATH)
  --tpm2            emulate a TPM 2.0 (default TPM 1.2)
  --log file=<path>|fd=<fd>[,level=<n>][,prefix=<s>][,truncate]
  --key file=<f>|fd=<fd>|pwdfile=<f>|pwdfd=<fd>[,mode=aes-cbc|aes-128-cbc|aes-256-cbc]
        [,format=hex|binary][,kdf=pbkdf2|sha512][,remove[=true|false]]
                    encrypt the state at rest
  --migration-key <same as --key>
                    encrypt state blobs handed out on the control channel
  --pid file=<path>|fd=<fd>
  --locality [reject-locality-4][,allow-set-locality]
  --flags [not-need-init][,startup-clear|startup-state|startup-deactivated|startup-none]
          [,disable-auto-shutdown]
  --migration [incoming][,release-lock-outgoing]
  -r|--runas <user> switch to this user after start
  --seccomp action=none|kill|log
                    deny-list of system calls (default kill)
  --print-capabilities  print the features as JSON and exit
  --print-states    print the stored state blobs as JSON and exit
  --vtpm-vendor-ctrl
                    (libvtpm) serve CMD_VTPM_TPM_COMMAND on the control channel,
                    so vtpm-attest can install a VM identity while it runs
                    (and CMD_VTPM_RAM_DIGEST for patched QEMU)
  --vm-memory path=<file>|peer[,policy=refuse|taint|skip][,required]
            [,verify=load|before-run]
                    (libvtpm) guest RAM to hash on save and check on restore:
                    a shared memory-backend file, or QEMU's own shared mappings
                    found through the control socket's peer; before-run: no
                    TPM command after a restore until its final verification
  --vtpm-admin-socket <path>
                    (libvtpm) unix socket (mode 0600, root or this user only)
                    that takes CMD_VTPM_VERIFY_RAM from a paused-restore
                    driver (vtpm-host restore); {uuid} is the VM UUID
  --vm-uuid <uuid>  (libvtpm) the VM's UUID (default: from the state path)
  --vtpm-host socket=<path>
                    (libvtpm) vtpm-hostd, whose host TPM key signs snapshot
                    records (the bridge never opens the host TPM)
  --vtpm-config <file>
                    (libvtpm) bridge config (default /etc/libvtpm/bridge.conf)
  --vtpm-state-key sealed|none
                    (libvtpm) sealed: encrypt the state at rest with the VM's
                    own key, which vtpm-hostd keeps sealed to the host TPM
                    (needs --vtpm-host and the VM UUID; not with --key)
  -h|--help         this text
)";
}

}  // namespace vtpm::bridge
