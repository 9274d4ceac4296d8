#include "issuance/vtpm_channel.hpp"

#include <netdb.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "ctrl/codec.hpp"
#include "engine/engine.hpp"
#include "tpm/commands.hpp"
#include "store/key.hpp"
#include "store/state_store.hpp"
#include "util/fd.hpp"

namespace vtpm::issuance {

namespace {

class OfflineChannel final : public VtpmChannel {
public:
    OfflineChannel(std::string uri, std::unique_ptr<store::StateStore> target, std::unique_ptr<engine::Engine> e)
        : uri_(std::move(uri)), target_(std::move(target)), engine_(std::move(e)) {}
    ~OfflineChannel() override { engine_->stop(); }

    Result<Bytes> transact(ByteView command) override { return engine_->command(command); }

    Result<void> commit() override {
        // Shutdown(CLEAR) flushes libtpms' NV to the memory store; the VM
        // starts with Startup(CLEAR) anyway.
        (void)engine_->command(tpm::shutdown(TPM2_SU_CLEAR));
        auto perm = engine_->store().load(store::kPermall);
        if (!perm) return perm.error();
        return target_->store(store::kPermall, *perm);
    }

    std::string describe() const override { return "state " + uri_ + " (offline)"; }

private:
    std::string uri_;
    std::unique_ptr<store::StateStore> target_;
    std::unique_ptr<engine::Engine> engine_;
};

class CtrlChannel final : public VtpmChannel {
public:
    CtrlChannel(std::string path, UniqueFd fd) : path_(std::move(path)), fd_(std::move(fd)) {}

    Result<Bytes> transact(ByteView command) override {
        Bytes msg = ctrl::encode_request(ctrl::VendorTpmCommandReq{command});
        if (auto r = write_all(msg); !r) return r.error();
        uint8_t hdr[8];
        if (auto r = read_all(hdr, 4); !r) return r.error();
        const uint32_t result = load_be32(hdr);
        if (result != 0)
            return make_error(result, "the bridge refused CMD_VTPM_TPM_COMMAND (result " + hex32(result) +
                                          "): is it running a vTPM with --vtpm-vendor-ctrl?");
        if (auto r = read_all(hdr + 4, 4); !r) return r.error();
        auto len = ctrl::vendor_response_length(ByteView(hdr, sizeof hdr));
        if (!len) return make_error(rc::kFail, "the bridge at " + path_ + ": " + len.error().message);
        Bytes rsp(*len);
        if (auto r = read_all(rsp.data(), *len); !r) return r.error();
        return rsp;
    }

    Result<void> commit() override { return {}; }
    std::string describe() const override { return "bridge at " + path_ + " (online)"; }

    /// The capability mask the bridge reports (CMD_GET_CAPABILITY).
    Result<uint64_t> capabilities() {
        if (auto r = write_all(ctrl::encode_request(ctrl::GetCapabilityReq{})); !r) return r.error();
        uint8_t caps[8];
        if (auto r = read_all(caps, sizeof caps); !r) return r.error();
        return load_be64(caps);
    }

private:
    Result<void> write_all(ByteView b) {
        size_t off = 0;
        while (off < b.size()) {
            ssize_t n = ::send(fd_.get(), b.data() + off, b.size() - off, MSG_NOSIGNAL);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) return make_error(rc::kIoError, "writing to " + path_ + ": " + std::strerror(errno));
            off += static_cast<size_t>(n);
        }
        return {};
    }
    Result<void> read_all(uint8_t* p, size_t len) {
        size_t off = 0;
        while (off < len) {
            ssize_t n = ::recv(fd_.get(), p + off, len - off, 0);
            if (n < 0 && errno == EINTR) continue;
            if (n == 0) return make_error(rc::kIoError, "the bridge at " + path_ + " closed the connection");
            if (n < 0) return make_error(rc::kIoError, "reading from " + path_ + ": " + std::strerror(errno));
            off += static_cast<size_t>(n);
        }
        return {};
    }

    std::string path_;
    UniqueFd fd_;
};

}  // namespace

Result<std::unique_ptr<VtpmChannel>> open_offline(const std::string& state_uri,
                                                  const std::optional<std::string>& key_option) {
    const std::string uri = state_uri.find("://") == std::string::npos ? "dir://" + state_uri : state_uri;
    std::optional<store::Key> key;
    if (key_option) {
        auto k = store::load_key_option(*key_option);
        if (!k) return k.error();
        key = std::move(*k);
    }
    auto disk = store::open_store(uri, true, 0600, std::move(key));
    if (!disk) return disk.error();
    if (auto l = (*disk)->lock(); !l)
        return make_error(rc::kFail, l.error().message + " (is the VM running? use --ctrl for a running bridge)");
    auto entries = (*disk)->list();
    if (!entries) return entries.error();
    for (const auto& e : *entries)
        if (e.name != store::kPermall)
            return make_error(rc::kFail, "the state has a saved " + e.name +
                                             " blob (suspended VM?): install the identity online or after a cold boot");
    auto perm = (*disk)->load(store::kPermall);
    if (!perm) return make_error(rc::kFail, "no vTPM state at " + uri + ": " + perm.error().message);
    auto mem = store::make_memory_store();
    if (auto r = mem->store(store::kPermall, *perm); !r) return r.error();
    engine::EngineConfig ec;
    auto eng = engine::Engine::create(ec, std::move(mem));
    if (!eng) return eng.error();
    if (auto r = (*eng)->init(false); !r) return r.error();
    if (auto r = (*eng)->startup(0); !r) return r.error();
    return std::unique_ptr<VtpmChannel>(std::make_unique<OfflineChannel>(uri, std::move(*disk), std::move(*eng)));
}

namespace {

Result<UniqueFd> connect_to(const std::string& where) {
    if (where.rfind("tcp:", 0) == 0) {
        const auto colon = where.rfind(':');
        const std::string host = where.substr(4, colon - 4), port = where.substr(colon + 1);
        addrinfo hints{};
        hints.ai_socktype = SOCK_STREAM;
        addrinfo* res = nullptr;
        if (colon <= 4 || getaddrinfo(host.c_str(), port.c_str(), &hints, &res) != 0)
            return make_error(rc::kBadParameter, "bad control address " + where + " (tcp:HOST:PORT)");
        std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> guard(res, freeaddrinfo);
        UniqueFd fd(::socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
        if (!fd || ::connect(fd.get(), res->ai_addr, res->ai_addrlen) != 0)
            return make_error(rc::kIoError, "cannot connect to " + where + ": " + std::strerror(errno));
        return fd;
    }
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd) return make_error(rc::kIoError, std::string("socket: ") + std::strerror(errno));
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    if (where.size() >= sizeof sa.sun_path) return make_error(rc::kBadParameter, "socket path too long");
    std::memcpy(sa.sun_path, where.c_str(), where.size() + 1);
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0)
        return make_error(rc::kIoError, "cannot connect to " + where + ": " + std::strerror(errno));
    return fd;
}

}  // namespace

Result<std::unique_ptr<VtpmChannel>> connect_ctrl(const std::string& socket_path) {
    auto conn = connect_to(socket_path);
    if (!conn) return conn.error();
    auto ch = std::make_unique<CtrlChannel>(socket_path, std::move(*conn));
    // Refuse early if the bridge does not offer the command.
    auto caps = ch->capabilities();
    if (!caps) return make_error(caps.code(), "CMD_GET_CAPABILITY: " + caps.error().message);
    if (!(*caps & ctrl::cap::kVtpmTpmCommand))
        return make_error(rc::kFail,
                          "the process at " + socket_path +
                              " does not offer CMD_VTPM_TPM_COMMAND (start the bridge with --vtpm-vendor-ctrl)");
    return std::unique_ptr<VtpmChannel>(std::move(ch));
}

}  // namespace vtpm::issuance
