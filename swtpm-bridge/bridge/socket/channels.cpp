#include "bridge/socket/channels.hpp"

#include <unistd.h>

#include "bridge/socket/sockets.hpp"

namespace vtpm::bridge {

UnlinkAtExit::~UnlinkAtExit() {
    for (const auto& p : paths) ::unlink(p.c_str());
}

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
