#include "snapshot/record_signer.hpp"

#include <algorithm>

#include "hostapi/client.hpp"
#include "merkle/merkle.hpp"
#include "tpm/objects.hpp"
#include "tpm/public_key.hpp"
#include "util/uuid.hpp"

namespace vtpm::snapshot {

namespace {

Result<hostapi::Uuid> raw_uuid(const std::string& uuid) {
    auto u = parse_uuid(uuid);
    if (!u) return u.error();
    hostapi::Uuid out{};
    std::copy(u->begin(), u->end(), out.begin());
    return out;
}

class HostdSigner final : public RecordSigner {
public:
    HostdSigner(hostapi::Client client, Bytes name, vtpm::PkeyPtr key)
        : client_(std::move(client)), name_(std::move(name)), key_(std::move(key)) {}

    const Bytes& key_name() const override { return name_; }

    Result<Bytes> sign(const SnapshotRecord& r) override {
        SnapshotRecord unsigned_record = r;
        unsigned_record.host_signature.clear();
        auto reply = client_.sign_record({encode_record(unsigned_record)});
        if (!reply) return reply.error();
        // What came back must be a signature by the AuthKey over this record.
        if (auto v = verify(name_, signed_message(r), reply->signature); !v)
            return make_error(rc::kFail, "the daemon's signature: " + v.error().message);
        return std::move(reply->signature);
    }

    Result<void> verify(ByteView key_name, ByteView message, ByteView signature) const override {
        if (!std::equal(key_name.begin(), key_name.end(), name_.begin(), name_.end()))
            return make_error(rc::kFail, "the record was signed by another host key (name " + to_hex(key_name) +
                                             "), not this host's AuthKey " + to_hex(name_));
        auto sig = tpm::unmarshal_signature(signature);
        if (!sig) return make_error(rc::kFail, "the record's host signature is malformed: " + sig.error().message);
        auto ok = tpm::verify_signature(key_.get(), message, *sig);
        if (!ok) return make_error(rc::kFail, "the record's host signature does not verify: " + ok.error().message);
        return {};
    }

    std::string describe() const override { return "host AuthKey through vtpm-hostd (" + client_.path() + ")"; }

private:
    hostapi::Client client_;
    Bytes name_;
    vtpm::PkeyPtr key_;
};

class HostdLedger final : public SnapshotLedger {
public:
    explicit HostdLedger(hostapi::Client client) : client_(std::move(client)) {}

    Result<std::optional<hoststate::LedgerEntry>> latest(const std::string& uuid) const override {
        auto u = raw_uuid(uuid);
        if (!u) return u.error();
        auto r = client_.ledger_latest(*u);
        if (!r) return r.error();
        if (!r->present) return std::optional<hoststate::LedgerEntry>{};
        hoststate::LedgerEntry e;
        e.generation = r->generation;
        std::copy(r->root.begin(), r->root.end(), e.root.begin());
        e.restored = r->restored;
        return std::optional<hoststate::LedgerEntry>(e);
    }

    Result<void> consume(const std::string& uuid, uint64_t generation, const Digest& root) const override {
        auto u = raw_uuid(uuid);
        if (!u) return u.error();
        hostapi::GenerationRequest req{*u, generation, {}};
        std::copy(root.begin(), root.end(), req.root.begin());
        return client_.consume_generation(req);
    }

    // Nothing to do: vtpm-hostd moves the ledger durably before it returns
    // the record's signature (SignSnapshotRecord), so a signed record is a
    // committed one; asking again would cost a round trip on the save path.
    Result<void> commit(const std::string&, const hoststate::LedgerEntry&) const override { return {}; }

    void keep_leaves(const std::string& uuid, const Digest& root, const std::vector<Digest>& leaves) const override {
        auto u = raw_uuid(uuid);
        if (!u) return;
        hostapi::LeavesRequest req{*u, {}, Bytes(leaves.size() * sizeof(Digest))};
        std::copy(root.begin(), root.end(), req.root.begin());
        for (size_t i = 0; i < leaves.size(); ++i)
            std::copy(leaves[i].begin(), leaves[i].end(), req.leaves.begin() + static_cast<ptrdiff_t>(i * 32));
        (void)client_.keep_leaves(req);  // only for naming pages later
    }

    std::optional<std::vector<Digest>> leaves_for(const std::string& uuid, const Digest& root) const override {
        auto u = raw_uuid(uuid);
        if (!u) return std::nullopt;
        hostapi::Digest32 r{};
        std::copy(root.begin(), root.end(), r.begin());
        auto raw = client_.leaves_for(*u, r);
        if (!raw || raw->empty() || raw->size() % sizeof(Digest) != 0) return std::nullopt;
        std::vector<Digest> leaves(raw->size() / sizeof(Digest));
        for (size_t i = 0; i < leaves.size(); ++i)
            std::copy_n(raw->begin() + static_cast<ptrdiff_t>(i * 32), 32, leaves[i].begin());
        if (merkle::merkle_root(leaves) != root) return std::nullopt;
        return leaves;
    }

private:
    hostapi::Client client_;
};

}  // namespace

Result<HostAuthority> connect_host_daemon(const std::string& socket_path) {
    hostapi::Client client(socket_path);
    auto info = client.host_info();
    if (!info) return info.error();
    auto pub = tpm::unmarshal_public(info->authkey_public);
    if (!pub) return make_error(rc::kFail, "vtpm-hostd sent a malformed AuthKey: " + pub.error().message);
    auto name = tpm::object_name(*pub);
    if (!name) return name.error();
    auto key = tpm::pkey_from_tpm_public(*pub);
    if (!key) return key.error();
    HostAuthority out;
    out.signer = std::make_unique<HostdSigner>(client, std::move(*name), std::move(*key));
    out.ledger = std::make_unique<HostdLedger>(client);
    return out;
}

}  // namespace vtpm::snapshot
