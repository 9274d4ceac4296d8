#include "bridge/socket/channels.hpp"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "bridge/socket/sockets.hpp"
#include "common/unix_listen.hpp"

namespace vtpm::bridge {

UnlinkAtExit::~UnlinkAtExit() {
    for (const auto& p : paths) ::unlink(p.c_str());
}

namespace {

// The Linux vTPM proxy (include/uapi/linux/vtpm_proxy.h): /dev/vtpmx makes
// a /dev/tpmN whose commands arrive on the returned fd.
struct VtpmProxyNewDev {
    uint32_t flags;
    uint32_t tpm_num;
    int32_t fd;
    uint32_t major;
    uint32_t minor;
};
constexpr uint32_t kVtpmProxyFlagTpm2 = 1;
constexpr unsigned long kVtpmProxyIocNewDev = _IOWR(0xa1, 0x00, VtpmProxyNewDev);

// chardev: the data channel is a character device (--chardev), an fd
// (--fd; a socketpair does too) or a new vTPM proxy device; the process
// ends with it, as swtpm's.
Result<void> open_chardev(const BridgeOptions& o, ServerConfig& sc) {
    const int given = (o.data_fd >= 0) + (o.chardev.has_value()) + o.vtpm_proxy;
    if (given == 0) return make_error(rc::kBadParameter, "chardev needs --chardev <device>, --fd <fd> or --vtpm-proxy");
    if (given > 1) return make_error(rc::kBadParameter, "chardev takes one of --chardev, --fd and --vtpm-proxy");
    if (o.data_fd >= 0) {
        struct stat st = {};
        if (::fstat(o.data_fd, &st) != 0) return make_error(rc::kFail, "Cannot stat file descriptor: " + std::string(std::strerror(errno)));
        if (S_ISREG(st.st_mode) || S_ISDIR(st.st_mode) || S_ISBLK(st.st_mode) || S_ISLNK(st.st_mode))
            return make_error(rc::kFail, "Given file descriptor type is not supported.");
        sc.data_client.reset(o.data_fd);
    } else if (o.chardev) {
        UniqueFd fd(::open(o.chardev->c_str(), O_RDWR | O_CLOEXEC));
        if (!fd) return make_error(rc::kFail, "Cannot open " + *o.chardev + ": " + std::string(std::strerror(errno)));
        sc.data_client = std::move(fd);
    } else {
        UniqueFd vtpmx(::open("/dev/vtpmx", O_RDWR | O_CLOEXEC));
        if (!vtpmx)
            return make_error(rc::kFail, "--vtpm-proxy: cannot open /dev/vtpmx: " + std::string(std::strerror(errno)) +
                                             " (the kernel's tpm_vtpm_proxy module)");
        VtpmProxyNewDev dev{o.tpm2 ? kVtpmProxyFlagTpm2 : 0, 0, -1, 0, 0};
        if (::ioctl(vtpmx.get(), kVtpmProxyIocNewDev, &dev) != 0)
            return make_error(rc::kFail, "--vtpm-proxy: VTPM_PROXY_IOC_NEW_DEV: " + std::string(std::strerror(errno)));
        sc.data_client.reset(dev.fd);
        std::printf("New TPM device: /dev/tpm%u (major/minor = %u/%u)\n", dev.tpm_num, dev.major, dev.minor);
        std::fflush(stdout);
    }
    sc.terminate = true;
    return {};
}

}  // namespace

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
            if (!is_socket(c.fd)) return make_error(rc::kFail, "--ctrl fd= is not a socket");
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
    if (o.iface == Iface::Chardev) return open_chardev(o, sc);
    if (o.data_fd >= 0) {
        // As swtpm: a descriptor that is not open, or a file, directory or
        // block device, is refused at start.
        struct stat st = {};
        if (::fstat(o.data_fd, &st) != 0)
            return make_error(rc::kFail, "Cannot stat file descriptor: " + std::string(std::strerror(errno)));
        if (S_ISREG(st.st_mode) || S_ISDIR(st.st_mode) || S_ISBLK(st.st_mode) || S_ISLNK(st.st_mode))
            return make_error(rc::kFail, "--fd " + std::to_string(o.data_fd) + ": descriptor type is not supported");
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
            if (is_listening(s.fd))
                sc.data_listen.reset(s.fd);
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

}  // namespace vtpm::bridge
