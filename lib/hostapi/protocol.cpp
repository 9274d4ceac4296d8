#include "hostapi/protocol.hpp"

#include <algorithm>
#include <cstring>

namespace vtpm::hostapi {

namespace {

// Fields beyond this are refused before anything is allocated for them.
constexpr size_t kMaxFields = 64;

Bytes be(uint64_t v, int bytes) {
    Bytes b;
    for (int s = (bytes - 1) * 8; s >= 0; s -= 8) b.push_back(static_cast<uint8_t>(v >> s));
    return b;
}
Bytes text(const std::string& s) { return Bytes(s.begin(), s.end()); }
template <size_t N>
Bytes raw(const std::array<uint8_t, N>& a) {
    return Bytes(a.begin(), a.end());
}

Bytes encode_body(uint16_t kind, std::optional<uint32_t> status, const std::vector<Bytes>& fields) {
    Bytes body;
    put_be16(body, kVersion);
    put_be16(body, kind);
    if (status) put_be32(body, *status);
    put_be16(body, static_cast<uint16_t>(fields.size()));
    for (const auto& f : fields) {
        put_be32(body, static_cast<uint32_t>(f.size()));
        body.insert(body.end(), f.begin(), f.end());
    }
    Bytes out;
    put_be32(out, static_cast<uint32_t>(body.size()));
    out.insert(out.end(), body.begin(), body.end());
    return out;
}

Result<Message> decode_body(ByteView b, bool response) {
    const size_t head = response ? 10 : 6;
    if (b.size() < head) return make_error(rc::kBadParameter, "host API message shorter than its header");
    if (load_be16(b.data()) != kVersion)
        return make_error(rc::kBadParameter, "host API version " + std::to_string(load_be16(b.data())) +
                                                 " (this side speaks " + std::to_string(kVersion) + ")");
    Message m;
    m.kind = load_be16(b.data() + 2);
    size_t off = 4;
    if (response) {
        m.status = load_be32(b.data() + off);
        off += 4;
    }
    const uint16_t n = load_be16(b.data() + off);
    off += 2;
    if (n > kMaxFields) return make_error(rc::kBadParameter, "host API message with " + std::to_string(n) + " fields");
    for (uint16_t i = 0; i < n; ++i) {
        if (b.size() - off < 4)
            return make_error(rc::kBadParameter, "host API field " + std::to_string(i) + ": length cut off");
        const uint32_t len = load_be32(b.data() + off);
        off += 4;
        if (len > b.size() - off)
            return make_error(rc::kBadParameter, "host API field " + std::to_string(i) + " is " +
                                                     std::to_string(len) + " bytes, only " +
                                                     std::to_string(b.size() - off) + " follow");
        m.fields.emplace_back(b.begin() + static_cast<ptrdiff_t>(off), b.begin() + static_cast<ptrdiff_t>(off + len));
        off += len;
    }
    if (off != b.size())
        return make_error(rc::kBadParameter, std::to_string(b.size() - off) + " bytes after the last host API field");
    return m;
}

// Reads the fields of one statement in order; every accessor checks size.
class Reader {
public:
    Reader(const std::vector<Bytes>& f, const char* what) : f_(f), what_(what) {}
    Result<void> count(size_t n) const {
        if (f_.size() != n)
            return make_error(rc::kBadParameter, std::string(what_) + ": " + std::to_string(f_.size()) +
                                                     " fields, expected " + std::to_string(n));
        return {};
    }
    const Bytes& bytes() { return f_[i_++]; }
    std::string string() {
        const Bytes& b = f_[i_++];
        return std::string(b.begin(), b.end());
    }
    template <size_t N>
    Result<std::array<uint8_t, N>> fixed(const char* name) {
        const Bytes& b = f_[i_++];
        if (b.size() != N) return wrong(name, N, b.size());
        std::array<uint8_t, N> a{};
        std::copy(b.begin(), b.end(), a.begin());
        return a;
    }
    Result<uint64_t> number(const char* name, size_t width) {
        const Bytes& b = f_[i_++];
        if (b.size() != width) return wrong(name, width, b.size());
        uint64_t v = 0;
        for (uint8_t x : b) v = (v << 8) | x;
        return v;
    }
    Result<bool> flag(const char* name) {
        auto v = number(name, 1);
        if (!v) return v.error();
        if (*v > 1) return make_error(rc::kBadParameter, std::string(what_) + ": " + name + " is neither 0 nor 1");
        return *v == 1;
    }

private:
    Error wrong(const char* name, size_t want, size_t got) const {
        return make_error(rc::kBadParameter, std::string(what_) + ": " + name + " is " + std::to_string(got) +
                                                 " bytes, expected " + std::to_string(want));
    }
    const std::vector<Bytes>& f_;
    const char* what_;
    size_t i_ = 0;
};

}  // namespace

std::string kind_name(uint16_t kind) {
    switch (static_cast<Kind>(kind)) {
        case Kind::HostInfo: return "HostInfo";
        case Kind::LedgerLatest: return "LedgerLatest";
        case Kind::SignSnapshotRecord: return "SignSnapshotRecord";
        case Kind::KeepLeaves: return "KeepLeaves";
        case Kind::LeavesFor: return "LeavesFor";
        case Kind::IssueTcgCert: return "IssueTcgCert";
        case Kind::IssueVaik: return "IssueVaik";
        case Kind::ConfirmVaik: return "ConfirmVaik";
        case Kind::VaikChallenge: return "VaikChallenge";
        case Kind::StateKey: return "StateKey";
        case Kind::ExportStateKey: return "ExportStateKey";
        case Kind::ConsumeGeneration: return "ConsumeGeneration";
        case Kind::RevertGeneration: return "RevertGeneration";
    }
    return "kind " + std::to_string(kind);
}

Bytes encode_request(Kind kind, const std::vector<Bytes>& fields) {
    return encode_body(static_cast<uint16_t>(kind), std::nullopt, fields);
}
Bytes encode_response(uint16_t kind, uint32_t status, const std::vector<Bytes>& fields) {
    return encode_body(kind, status, fields);
}
Bytes encode_failure(uint16_t kind, uint32_t status, const std::string& reason) {
    return encode_body(kind, status == 0 ? 1 : status, {text(reason)});
}

Result<uint32_t> frame_length(ByteView prefix) {
    if (prefix.size() != 4) return make_error(rc::kBadParameter, "host API frame prefix must be 4 bytes");
    const uint32_t n = load_be32(prefix.data());
    if (n > kMaxFrame)
        return make_error(rc::kBadParameter, "host API frame of " + std::to_string(n) + " bytes (at most " +
                                                 std::to_string(kMaxFrame) + ")");
    return n;
}

Result<Message> decode_request(ByteView body) { return decode_body(body, false); }
Result<Message> decode_response(ByteView body) { return decode_body(body, true); }

std::vector<Bytes> to_fields(const HostInfoReply& m) {
    std::vector<Bytes> f{m.authkey_public, m.authkey_cert};
    f.insert(f.end(), m.chain.begin(), m.chain.end());
    return f;
}
std::vector<Bytes> to_fields(const StateKeyRequest& m) { return {raw(m.vm), Bytes{uint8_t(m.create ? 1 : 0)}}; }
std::vector<Bytes> to_fields(const StateKeyReply& m) { return {Bytes{uint8_t(m.created ? 1 : 0)}, m.key}; }
std::vector<Bytes> to_fields(const LedgerQuery& m) { return {raw(m.vm)}; }
std::vector<Bytes> to_fields(const LedgerReply& m) {
    return {be(m.present ? 1 : 0, 1), be(m.generation, 8), raw(m.root), be(m.restored ? 1 : 0, 1)};
}
std::vector<Bytes> to_fields(const GenerationRequest& m) { return {raw(m.vm), be(m.generation, 8), raw(m.root)}; }
std::vector<Bytes> to_fields(const RecordRequest& m) { return {m.record}; }
std::vector<Bytes> to_fields(const RecordReply& m) { return {m.signature}; }
std::vector<Bytes> to_fields(const LeavesRequest& m) { return {raw(m.vm), raw(m.root), m.leaves}; }
std::vector<Bytes> to_fields(const TcgCertRequest& m) {
    return {be(m.kind, 1),
            m.subject_public_key,
            be(m.tpm2, 1),
            be(m.allow_signing, 1),
            be(m.decryption, 1),
            text(m.subject_cn),
            text(m.tpm_manufacturer),
            text(m.tpm_model),
            text(m.tpm_version),
            text(m.spec_family),
            be(m.spec_level, 8),
            be(m.spec_revision, 8),
            text(m.platform_manufacturer),
            text(m.platform_model),
            text(m.platform_version),
            be(static_cast<uint32_t>(m.days), 4)};
}
std::vector<Bytes> to_fields(const VaikChallengeRequest& m) { return {raw(m.vm), m.vaik_public, m.ek_cert}; }
std::vector<Bytes> to_fields(const VaikChallengeReply& m) {
    return {raw(m.id), m.credential_blob, m.encrypted_secret};
}
std::vector<Bytes> to_fields(const VaikRequest& m) {
    return {raw(m.challenge), m.activated, raw(m.vm), m.user_cert, m.nonce, m.vaik_public, be(m.vtpm_generation, 8), be(m.vaik_existed, 1),
            be(m.days, 4), be(m.adopt, 1)};
}
std::vector<Bytes> to_fields(const VaikReply& m) { return {m.certificate, m.bundle, be(m.generation, 8)}; }
std::vector<Bytes> to_fields(const VaikConfirm& m) { return {raw(m.vm), be(m.generation, 8), m.vaik_name}; }

Result<HostInfoReply> parse_host_info(const std::vector<Bytes>& f) {
    if (f.size() < 2) return make_error(rc::kBadParameter, "HostInfo: fewer than 2 fields");
    return HostInfoReply{f[0], f[1], std::vector<Bytes>(f.begin() + 2, f.end())};
}

Result<StateKeyRequest> parse_state_key_request(const std::vector<Bytes>& f) {
    Reader r(f, "StateKey");
    if (auto c = r.count(2); !c) return c.error();
    auto vm = r.fixed<16>("VM UUID");
    auto create = vm ? r.flag("create") : Result<bool>(vm.error());
    if (!create) return create.error();
    return StateKeyRequest{*vm, *create};
}
Result<StateKeyReply> parse_state_key_reply(const std::vector<Bytes>& f) {
    Reader r(f, "StateKey reply");
    if (auto c = r.count(2); !c) return c.error();
    auto created = r.flag("created");
    if (!created) return created.error();
    const Bytes& key = r.bytes();
    if (key.size() != 32) return make_error(rc::kBadParameter, "StateKey reply: the key is not 32 bytes");
    return StateKeyReply{*created, key};
}
Result<LedgerQuery> parse_ledger_query(const std::vector<Bytes>& f) {
    Reader r(f, "LedgerLatest");
    if (auto c = r.count(1); !c) return c.error();
    auto vm = r.fixed<16>("VM UUID");
    if (!vm) return vm.error();
    return LedgerQuery{*vm};
}

Result<LedgerReply> parse_ledger_reply(const std::vector<Bytes>& f) {
    Reader r(f, "LedgerLatest reply");
    if (auto c = r.count(4); !c) return c.error();
    auto present = r.flag("present");
    auto gen = present ? r.number("generation", 8) : Result<uint64_t>(present.error());
    auto root = gen ? r.fixed<32>("root") : Result<Digest32>(gen.error());
    auto restored = root ? r.flag("restored") : Result<bool>(root.error());
    if (!restored) return restored.error();
    return LedgerReply{*present, *gen, *root, *restored};
}
Result<GenerationRequest> parse_generation_request(const std::vector<Bytes>& f) {
    Reader r(f, "generation request");
    if (auto c = r.count(3); !c) return c.error();
    auto vm = r.fixed<16>("VM UUID");
    auto gen = vm ? r.number("generation", 8) : Result<uint64_t>(vm.error());
    auto root = gen ? r.fixed<32>("root") : Result<Digest32>(gen.error());
    if (!root) return root.error();
    return GenerationRequest{*vm, *gen, *root};
}

Result<RecordRequest> parse_record_request(const std::vector<Bytes>& f) {
    Reader r(f, "SignSnapshotRecord");
    if (auto c = r.count(1); !c) return c.error();
    return RecordRequest{r.bytes()};
}

Result<RecordReply> parse_record_reply(const std::vector<Bytes>& f) {
    Reader r(f, "SignSnapshotRecord reply");
    if (auto c = r.count(1); !c) return c.error();
    return RecordReply{r.bytes()};
}

Result<LeavesRequest> parse_leaves_request(const std::vector<Bytes>& f) {
    Reader r(f, "leaves request");
    if (auto c = r.count(3); !c) return c.error();
    auto vm = r.fixed<16>("VM UUID");
    auto root = vm ? r.fixed<32>("root") : Result<Digest32>(vm.error());
    if (!root) return root.error();
    LeavesRequest out{*vm, *root, r.bytes()};
    if (out.leaves.size() % 32 != 0)
        return make_error(rc::kBadParameter, "leaves request: the page hashes are not a multiple of 32 bytes");
    return out;
}

Result<TcgCertRequest> parse_tcg_cert_request(const std::vector<Bytes>& f) {
    Reader r(f, "IssueTcgCert");
    if (auto c = r.count(16); !c) return c.error();
    TcgCertRequest m;
    auto kind = r.number("kind", 1);
    if (!kind) return kind.error();
    if (*kind > 1) return make_error(rc::kBadParameter, "IssueTcgCert: kind " + std::to_string(*kind) + " unknown");
    m.kind = static_cast<uint8_t>(*kind);
    m.subject_public_key = r.bytes();
    for (auto [out, name] : {std::pair{&m.tpm2, "tpm2"}, {&m.allow_signing, "allow_signing"},
                             {&m.decryption, "decryption"}}) {
        auto v = r.flag(name);
        if (!v) return v.error();
        *out = *v;
    }
    for (std::string* s : {&m.subject_cn, &m.tpm_manufacturer, &m.tpm_model, &m.tpm_version, &m.spec_family})
        *s = r.string();
    auto level = r.number("spec level", 8);
    auto rev = level ? r.number("spec revision", 8) : Result<uint64_t>(level.error());
    if (!rev) return rev.error();
    m.spec_level = *level;
    m.spec_revision = *rev;
    for (std::string* s : {&m.platform_manufacturer, &m.platform_model, &m.platform_version}) *s = r.string();
    auto days = r.number("days", 4);
    if (!days) return days.error();
    m.days = static_cast<int32_t>(static_cast<uint32_t>(*days));
    return m;
}

Result<VaikChallengeRequest> parse_vaik_challenge_request(const std::vector<Bytes>& f) {
    Reader r(f, "VaikChallenge");
    if (auto c = r.count(3); !c) return c.error();
    auto vm = r.fixed<16>("VM UUID");
    if (!vm) return vm.error();
    VaikChallengeRequest m{*vm, {}, {}};
    m.vaik_public = r.bytes();
    m.ek_cert = r.bytes();
    return m;
}

Result<VaikChallengeReply> parse_vaik_challenge_reply(const std::vector<Bytes>& f) {
    Reader r(f, "VaikChallenge reply");
    if (auto c = r.count(3); !c) return c.error();
    auto id = r.fixed<16>("challenge id");
    if (!id) return id.error();
    VaikChallengeReply m{*id, {}, {}};
    m.credential_blob = r.bytes();
    m.encrypted_secret = r.bytes();
    return m;
}

Result<VaikRequest> parse_vaik_request(const std::vector<Bytes>& f) {
    Reader r(f, "IssueVaik");
    if (auto c = r.count(10); !c) return c.error();
    VaikRequest m;
    auto ch = r.fixed<16>("challenge id");
    if (!ch) return ch.error();
    m.challenge = *ch;
    m.activated = r.bytes();
    auto vm = r.fixed<16>("VM UUID");
    if (!vm) return vm.error();
    m.vm = *vm;
    m.user_cert = r.bytes();
    m.nonce = r.bytes();
    m.vaik_public = r.bytes();
    auto gen = r.number("vTPM generation", 8);
    auto existed = gen ? r.flag("vaik_existed") : Result<bool>(gen.error());
    auto days = existed ? r.number("days", 4) : Result<uint64_t>(existed.error());
    auto adopt = days ? r.flag("adopt") : Result<bool>(days.error());
    if (!adopt) return adopt.error();
    m.vtpm_generation = *gen;
    m.vaik_existed = *existed;
    m.days = static_cast<uint32_t>(*days);
    m.adopt = *adopt;
    return m;
}

Result<VaikReply> parse_vaik_reply(const std::vector<Bytes>& f) {
    Reader r(f, "IssueVaik reply");
    if (auto c = r.count(3); !c) return c.error();
    VaikReply m;
    m.certificate = r.bytes();
    m.bundle = r.bytes();
    auto gen = r.number("generation", 8);
    if (!gen) return gen.error();
    m.generation = *gen;
    return m;
}

Result<VaikConfirm> parse_vaik_confirm(const std::vector<Bytes>& f) {
    Reader r(f, "ConfirmVaik");
    if (auto c = r.count(3); !c) return c.error();
    auto vm = r.fixed<16>("VM UUID");
    auto gen = vm ? r.number("generation", 8) : Result<uint64_t>(vm.error());
    if (!gen) return gen.error();
    return VaikConfirm{*vm, *gen, r.bytes()};
}

}  // namespace vtpm::hostapi
