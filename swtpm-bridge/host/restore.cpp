// vtpm-host restore. QEMU loads a saved stream section by section and the
// bridge checks the snapshot record when the TPM section arrives; a later
// RAM section of an edited stream could still change verified pages. So the
// domain is restored paused, the bridge re-checks guest RAM through its
// admin socket (QEMU holds the control socket) before any vCPU runs, and
// only a verified domain is resumed. virsh is run with argument vectors,
// never through a shell.
#include "host/restore.hpp"

#include <fcntl.h>
#include <getopt.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "ctrl/codec.hpp"
#include "util/durable_file.hpp"
#include "util/fd.hpp"
#include "util/key_value.hpp"
#include "util/uuid.hpp"

extern char** environ;

namespace vtpm::host {
namespace {

constexpr const char* kDefaultBridgeConfig = "/etc/libvtpm/bridge.conf";
// Hashing a large guest takes a while; a bridge that does not answer at all
// must not hang the driver forever.
constexpr int kVerifyTimeoutSeconds = 600;

struct Ran {
    int status = -1;  // exit status, or -1 when killed by a signal
    std::string out;  // stdout, when asked for
};

// Run `argv` (found on PATH) and wait; stdout captured when `capture`.
Result<Ran> run(const std::vector<std::string>& argv, bool capture) {
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    int pipefd[2] = {-1, -1};
    if (capture && ::pipe2(pipefd, O_CLOEXEC) != 0)
        return make_error(rc::kFail, std::string("pipe: ") + strerror(errno));
    UniqueFd rd(pipefd[0]), wr(pipefd[1]);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    if (capture) posix_spawn_file_actions_adddup2(&fa, wr.get(), 1);
    pid_t pid = -1;
    const int e = posix_spawnp(&pid, args[0], &fa, nullptr, args.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    if (e != 0) return make_error(rc::kFail, "cannot run " + argv[0] + ": " + strerror(e));
    wr.reset();
    Ran r;
    if (capture) {
        char buf[4096];
        for (ssize_t n; (n = ::read(rd.get(), buf, sizeof buf)) != 0;) {
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) break;
            r.out.append(buf, static_cast<size_t>(n));
        }
    }
    int st = 0;
    while (::waitpid(pid, &st, 0) < 0)
        if (errno != EINTR) return make_error(rc::kFail, std::string("waitpid: ") + strerror(errno));
    r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    return r;
}

std::vector<std::string> virsh(const std::string& uri, std::initializer_list<std::string> args) {
    std::vector<std::string> v{"virsh", "-q"};
    if (!uri.empty()) v.insert(v.end(), {"-c", uri});
    v.insert(v.end(), args);
    return v;
}

// The domain UUID in a save image's XML (<domain>'s own <uuid>, the first).
Result<std::string> image_uuid(const std::string& uri, const std::string& file) {
    auto r = run(virsh(uri, {"save-image-dumpxml", file}), true);
    if (!r) return r.error();
    if (r->status != 0) return make_error(rc::kFail, "virsh save-image-dumpxml " + file + " failed");
    const auto a = r->out.find("<uuid>"), b = r->out.find("</uuid>");
    if (a == std::string::npos || b == std::string::npos || b < a)
        return make_error(rc::kFail, "the save image's domain XML has no <uuid>");
    auto u = canonical_uuid(trim(std::string_view(r->out).substr(a + 6, b - a - 6)));
    if (!u) return make_error(rc::kFail, "the save image's domain UUID is not a UUID");
    return *u;
}

// The admin socket the bridge of VM `uuid` listens on: `explicit_path`, else
// admin_socket in the bridge config ("{uuid}" replaced in either).
Result<std::string> admin_path(const std::string& explicit_path, const std::string& config, const std::string& uuid) {
    std::string path = explicit_path;
    if (path.empty()) {
        auto raw = read_whole_file(config);
        if (!raw) return make_error(rc::kFail, "bridge config " + config + ": " + raw.error().message);
        auto kv = parse_key_values(std::string_view(reinterpret_cast<const char*>(raw->data()), raw->size()), config);
        if (!kv) return kv.error();
        for (const auto& l : *kv)
            if (l.key == "admin_socket") path = l.value;
        if (path.empty())
            return make_error(rc::kFail, "bridge config " + config + " names no admin_socket: the bridge cannot be "
                                         "asked to verify");
    }
    if (auto p = path.find("{uuid}"); p != std::string::npos) path.replace(p, 6, uuid);
    return path;
}

bool read_all(int fd, uint8_t* p, size_t n) {
    while (n > 0) {
        const ssize_t k = ::read(fd, p, n);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return false;
        p += k;
        n -= static_cast<size_t>(k);
    }
    return true;
}

// CMD_VTPM_VERIFY_RAM on the admin socket: success, or the bridge's reason.
Result<void> ask_bridge(const std::string& path) {
    sockaddr_un addr{};
    if (path.size() >= sizeof addr.sun_path) return make_error(rc::kFail, "admin socket path too long: " + path);
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd) return make_error(rc::kFail, std::string("socket: ") + strerror(errno));
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
        return make_error(rc::kFail, "cannot reach the bridge's admin socket " + path + ": " + strerror(errno));
    timeval tv{kVerifyTimeoutSeconds, 0};
    ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    const Bytes req = ctrl::encode_request(ctrl::VendorVerifyRamReq{});
    if (::write(fd.get(), req.data(), req.size()) != static_cast<ssize_t>(req.size()))
        return make_error(rc::kFail, "cannot send to the bridge's admin socket: " + std::string(strerror(errno)));
    uint8_t head[8];
    if (!read_all(fd.get(), head, sizeof head))
        return make_error(rc::kFail, "the bridge gave no answer on its admin socket");
    auto h = ctrl::vendor_text_head(ByteView(head, sizeof head));
    if (!h) return h.error();
    std::string text(h->length, '\0');
    if (h->length && !read_all(fd.get(), reinterpret_cast<uint8_t*>(text.data()), text.size()))
        return make_error(rc::kFail, "the bridge's answer was cut short");
    if (h->result != 0)
        return make_error(h->result, text.empty() ? "the bridge refused (result " + hex32(h->result) + ")" : text);
    return {};
}

int usage() {
    std::fprintf(stderr, "usage: vtpm-host restore FILE [--connect URI] [--bridge-config PATH] "
                         "[--admin-socket PATH]\n");
    return 2;
}

}  // namespace

int restore_main(int argc, char** argv) {
    static const struct option longopts[] = {{"connect", required_argument, nullptr, 'c'},
                                             {"bridge-config", required_argument, nullptr, 'b'},
                                             {"admin-socket", required_argument, nullptr, 'a'},
                                             {nullptr, 0, nullptr, 0}};
    std::string uri, config = kDefaultBridgeConfig, admin;
    optind = 2;
    for (int c; (c = getopt_long(argc, argv, "", longopts, nullptr)) != -1;) {
        switch (c) {
            case 'c': uri = optarg; break;
            case 'b': config = optarg; break;
            case 'a': admin = optarg; break;
            default: return usage();
        }
    }
    if (optind != argc - 1) return usage();
    const std::string file = argv[optind];
    auto fail = [](const std::string& msg) {
        std::fprintf(stderr, "vtpm-host restore: %s\n", msg.c_str());
        return 1;
    };

    auto uuid = image_uuid(uri, file);
    if (!uuid) return fail(uuid.error().message);
    auto sock = admin_path(admin, config, *uuid);
    if (!sock) return fail(sock.error().message);
    // Paused: no vCPU runs before the bridge has checked the loaded RAM.
    auto r = run(virsh(uri, {"restore", "--paused", file}), false);
    if (!r) return fail(r.error().message);
    if (r->status != 0) return fail("virsh restore --paused " + file + " failed (the bridge may have refused at load)");
    auto v = ask_bridge(*sock);
    if (!v) {
        std::fprintf(stderr, "vtpm-host restore: the bridge refused domain %s: %s\n", uuid->c_str(),
                     v.error().message.c_str());
        auto d = run(virsh(uri, {"destroy", *uuid}), false);
        if (!d || d->status != 0) return fail("virsh destroy " + *uuid + " failed: the domain may still be paused");
        std::fprintf(stderr, "vtpm-host restore: domain %s destroyed, never resumed\n", uuid->c_str());
        return 1;
    }
    auto res = run(virsh(uri, {"resume", *uuid}), false);
    if (!res) return fail(res.error().message);
    if (res->status != 0) return fail("virsh resume " + *uuid + " failed");
    std::printf("domain %s restored: snapshot record verified before run, resumed\n", uuid->c_str());
    return 0;
}

}  // namespace vtpm::host
