// The bridge's admin socket. QEMU holds the control socket (it serves one
// client at a time), so a paused-restore driver (vtpm-host restore) reaches
// the bridge here: a unix socket, mode 0600 and created under umask 077,
// whose peers must be root or the bridge's own user (SO_PEERCRED). It takes
// CMD_VTPM_VERIFY_RAM only, framed by the control channel's codec; any other
// command is answered TPM_BAD_ORDINAL and the connection closed. It serves
// on the bridge's event loop, beside the socket front end.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "bridge/event_loop.hpp"
#include "core/dispatcher.hpp"
#include "util/bytes.hpp"
#include "util/fd.hpp"
#include "vtpm/result.hpp"

namespace vtpm::bridge {

class AdminSocket {
public:
    /// What CMD_VTPM_VERIFY_RAM answers (snapshot::verify_reply).
    using VerifyHandler = std::function<core::Reply()>;

    /// Listen on `path` (an old socket there is replaced) and serve
    /// `verify` once `loop` runs. The socket is unlinked again by the
    /// destructor.
    static Result<std::unique_ptr<AdminSocket>> open(const std::string& path, VerifyHandler verify, EventLoop& loop);
    ~AdminSocket();
    AdminSocket(const AdminSocket&) = delete;
    AdminSocket& operator=(const AdminSocket&) = delete;

private:
    AdminSocket(std::string path, UniqueFd listen, VerifyHandler verify, EventLoop& loop);
    bool on_listen(int fd);
    bool on_client(int fd);
    /// Answer every complete message in the buffer; false: close the client.
    bool process();
    void close_client();

    std::string path_;
    UniqueFd listen_, client_;
    Bytes buf_;
    EventLoop& loop_;
    EventLoop::Id listen_watch_ = 0, client_watch_ = 0;
    VerifyHandler verify_;
};

}  // namespace vtpm::bridge
