#include "hostapi/client.hpp"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include <cerrno>
#include <cstring>

#include "hostapi/io.hpp"
#include "util/fd.hpp"

namespace vtpm::hostapi {

namespace {

// A TPM signature takes well under a second; a daemon silent this long is stuck.
constexpr int kTimeoutMs = 60000;

}  // namespace

Result<std::vector<Bytes>> Client::call(Kind kind, const std::vector<Bytes>& fields) const {
    auto fail = [&](const std::string& why) {
        return make_error(rc::kFail, "vtpm-hostd (" + path_ + "), " + kind_name(static_cast<uint16_t>(kind)) + ": " +
                                         why);
    };
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path_.size() >= sizeof addr.sun_path) return fail("socket path too long");
    std::memcpy(addr.sun_path, path_.c_str(), path_.size() + 1);
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd) return fail(std::string("socket: ") + std::strerror(errno));
    if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0)
        return fail(std::string("cannot connect: ") + std::strerror(errno) + " (is vtpm-hostd running?)");
    if (auto r = send_all(fd.get(), encode_request(kind, fields)); !r) return fail(r.error().message);
    uint8_t prefix[4];
    bool eof = false;
    if (auto r = recv_exact(fd.get(), prefix, sizeof prefix, kTimeoutMs, eof); !r) return fail(r.error().message);
    auto len = frame_length(ByteView(prefix, 4));
    if (!len) return fail(len.error().message);
    Bytes body(*len);
    if (auto r = recv_exact(fd.get(), body.data(), body.size(), kTimeoutMs, eof); !r) return fail(r.error().message);
    auto m = decode_response(body);
    OPENSSL_cleanse(body.data(), body.size());  // a StateKey answer carries a key
    if (!m) return fail(m.error().message);
    if (m->kind != static_cast<uint16_t>(kind)) return fail("the answer is for another request (" +
                                                             kind_name(m->kind) + ")");
    if (m->status != 0) {
        const std::string why = m->fields.size() == 1 ? std::string(m->fields[0].begin(), m->fields[0].end())
                                                      : "refused without a reason";
        return make_error(m->status, "vtpm-hostd refused " + kind_name(m->kind) + ": " + why);
    }
    return std::move(m->fields);
}

Result<HostInfoReply> Client::host_info() const {
    auto f = call(Kind::HostInfo, {});
    if (!f) return f.error();
    return parse_host_info(*f);
}

Result<LedgerReply> Client::ledger_latest(const Uuid& vm) const {
    auto f = call(Kind::LedgerLatest, to_fields(LedgerQuery{vm}));
    if (!f) return f.error();
    return parse_ledger_reply(*f);
}

Result<RecordReply> Client::sign_record(const RecordRequest& r) const {
    auto f = call(Kind::SignSnapshotRecord, to_fields(r));
    if (!f) return f.error();
    return parse_record_reply(*f);
}

Result<void> Client::keep_leaves(const LeavesRequest& r) const {
    auto f = call(Kind::KeepLeaves, to_fields(r));
    if (!f) return f.error();
    return {};
}

Result<Bytes> Client::leaves_for(const Uuid& vm, const Digest32& root) const {
    auto f = call(Kind::LeavesFor, to_fields(LeavesRequest{vm, root, {}}));
    if (!f) return f.error();
    if (f->size() != 1) return make_error(rc::kFail, "LeavesFor reply: expected one field");
    return std::move((*f)[0]);
}

Result<Bytes> Client::issue_tcg_cert(const TcgCertRequest& r) const {
    auto f = call(Kind::IssueTcgCert, to_fields(r));
    if (!f) return f.error();
    if (f->size() != 1) return make_error(rc::kFail, "IssueTcgCert reply: expected one field");
    return std::move((*f)[0]);
}

Result<VaikChallengeReply> Client::vaik_challenge(const VaikChallengeRequest& r) const {
    auto f = call(Kind::VaikChallenge, to_fields(r));
    if (!f) return f.error();
    return parse_vaik_challenge_reply(*f);
}

Result<VaikReply> Client::issue_vaik(const VaikRequest& r) const {
    auto f = call(Kind::IssueVaik, to_fields(r));
    if (!f) return f.error();
    return parse_vaik_reply(*f);
}

Result<void> Client::confirm_vaik(const VaikConfirm& r) const {
    auto f = call(Kind::ConfirmVaik, to_fields(r));
    if (!f) return f.error();
    return {};
}

namespace {

Result<ProtectedBytes> key_from(Result<std::vector<Bytes>> f, bool* created) {
    if (!f) return f.error();
    auto r = parse_state_key_reply(*f);
    for (auto& b : *f) OPENSSL_cleanse(b.data(), b.size());
    if (!r) return r.error();
    ProtectedBytes key(r->key);
    OPENSSL_cleanse(r->key.data(), r->key.size());
    if (created) *created = r->created;
    return key;
}

}  // namespace

Result<ProtectedBytes> Client::state_key(const Uuid& vm, bool create, bool* created) const {
    return key_from(call(Kind::StateKey, to_fields(StateKeyRequest{vm, create})), created);
}

Result<void> Client::consume_generation(const GenerationRequest& r) const {
    auto f = call(Kind::ConsumeGeneration, to_fields(r));
    if (!f) return f.error();
    return {};
}

Result<void> Client::revert_generation(const GenerationRequest& r) const {
    auto f = call(Kind::RevertGeneration, to_fields(r));
    if (!f) return f.error();
    return {};
}

Result<ProtectedBytes> Client::export_state_key(const Uuid& vm) const {
    return key_from(call(Kind::ExportStateKey, to_fields(StateKeyRequest{vm, false})), nullptr);
}

}  // namespace vtpm::hostapi
