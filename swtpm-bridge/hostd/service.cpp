#include "hostd/service.hpp"

#include <openssl/rand.h>
#include <openssl/x509.h>

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "hostapi/protocol.hpp"
#include "hoststate/ek_bindings.hpp"
#include "hoststate/host_files.hpp"
#include "hoststate/ledger.hpp"
#include "hoststate/state_keys.hpp"
#include "hosttpm/sealed_secret.hpp"
#include "issuance/ek_policy.hpp"
#include "issuance/host_identity.hpp"
#include "issuance/issue.hpp"
#include "merkle/merkle.hpp"
#include "snapshot/record.hpp"
#include "tpm/objects.hpp"
#include "util/log.hpp"
#include "util/uuid.hpp"
#include "x509/local_ca.hpp"
#include "x509/tcg_cert.hpp"

namespace vtpm::hostd {

namespace {

using Fields = std::vector<Bytes>;

std::string uuid_text(const hostapi::Uuid& u) {
    std::array<uint8_t, 16> a{};
    std::copy(u.begin(), u.end(), a.begin());
    return format_uuid(a);
}

Result<Fields> host_info(issuance::HostRoot& root) {
    hostapi::HostInfoReply out;
    auto pub = tpm::marshal_public(root.authkey_public());
    if (!pub) return pub.error();
    out.authkey_public = *pub;
    // Certificates exist after enrollment only; before it they are empty.
    if (auto cert = x509::read_pem_certificate(root.dir() + "/" + hoststate::kAuthKeyCertFile)) {
        auto der = x509::to_der(cert->get());
        if (!der) return der.error();
        out.authkey_cert = *der;
        if (auto chain = x509::read_pem_certificates(root.dir() + "/" + hoststate::kCaChainFile))
            for (int i = 0; i < sk_X509_num(chain->get()); ++i) {
                auto d = x509::to_der(sk_X509_value(chain->get(), i));
                if (!d) return d.error();
                out.chain.push_back(*d);
            }
    }
    return hostapi::to_fields(out);
}

Result<Fields> ledger_latest(const hoststate::Ledger& ledger, const Fields& f) {
    auto q = hostapi::parse_ledger_query(f);
    if (!q) return q.error();
    hostapi::LedgerReply out;
    if (auto e = ledger.latest(uuid_text(q->vm))) {
        out.present = true;
        out.generation = e->generation;
        std::copy(e->root.begin(), e->root.end(), out.root.begin());
        out.restored = e->restored;
    }
    return hostapi::to_fields(out);
}

// " (ledger counter N)" for the log line of a step anchored at N.
std::string counter_note(const std::optional<uint64_t>& counter) {
    return counter ? " (ledger counter " + std::to_string(*counter) + ")" : "";
}

// One ledger step: `write(counter)` puts the change in the ledger file for
// the next counter value (durably), then the host TPM's counter moves there,
// so that an older copy of the file is found out. Returns that value.
template <class Write>
Result<uint64_t> ledger_step(issuance::HostRoot& root, const hoststate::Ledger& ledger, Write&& write) {
    const uint64_t counter = ledger.book().counter + 1;
    if (auto w = write(counter); !w) return w.error();
    auto moved = root.ledger_counter().increment(root.tpm());
    if (!moved) return make_error(rc::kFail, "the ledger is written but the host TPM's counter did not move: " +
                                                 moved.error().message);
    if (*moved != counter)
        return make_error(rc::kFail, "the host TPM's ledger counter is at " + std::to_string(*moved) + ", expected " +
                                         std::to_string(counter) + ": another writer?");
    return counter;
}

// ConsumeGeneration: the latest save of a VM was restored and its TPM runs;
// from now on that image restores no more (its NV counters and lockout
// state would roll back). RevertGeneration: the operator's explicit snapshot
// revert; save G restores (once) again. Either is a ledger step anchored in
// the TPM counter.
Result<Fields> generation_step(issuance::HostRoot& root, hoststate::Ledger& ledger, const Fields& f, bool revert,
                               std::string& what) {
    auto q = hostapi::parse_generation_request(f);
    if (!q) return q.error();
    const std::string uuid = uuid_text(q->vm);
    what = "VM " + uuid + " generation " + std::to_string(q->generation);
    Digest d{};
    std::copy(q->root.begin(), q->root.end(), d.begin());
    auto counter = ledger_step(root, ledger, [&](uint64_t c) {
        return revert ? ledger.revert(uuid, q->generation, c) : ledger.consume(uuid, q->generation, d, c);
    });
    if (!counter) return counter.error();
    what += counter_note(*counter);
    return Fields{};
}

// A snapshot record is signed only when it is one: it parses, names this
// host's AuthKey, and continues the VM's ledger by exactly one generation.
// The ledger file and then the host TPM's counter move before the signature
// leaves, so an older image is recognised even if the bridge dies right
// after, and a ledger file put back later is found out at the next start.
Result<Fields> sign_record(issuance::HostRoot& root, hoststate::Ledger& ledger, const Fields& f, std::string& what) {
    auto q = hostapi::parse_record_request(f);
    if (!q) return q.error();
    auto r = snapshot::parse_record(q->record);
    if (!r) return make_error(rc::kBadParameter, "not a snapshot record: " + r.error().message);
    if (!r->host_signature.empty()) return make_error(rc::kBadParameter, "the record is signed already");
    const std::string uuid = format_uuid(r->vm_uuid);
    what = "VM " + uuid + " generation " + std::to_string(r->generation);
    if (r->host_key_name != root.authkey_name())
        return make_error(rc::kBadParameter, "the record names another host key than this host's AuthKey");
    const uint64_t next = ledger.next_generation(uuid);
    if (r->generation != next)
        return make_error(rc::kBadParameter, "VM " + uuid + ": the next generation is " + std::to_string(next) +
                                                 ", the record says " + std::to_string(r->generation));
    auto sig = root.sign_digest(sha256_bytes(snapshot::signed_message(*r)));
    if (!sig) return sig.error();
    auto out = tpm::marshal_signature(*sig);
    if (!out) return out.error();
    auto counter = ledger_step(root, ledger, [&](uint64_t c) {
        return ledger.commit(uuid, hoststate::LedgerEntry{r->generation, r->root, false}, c);
    });
    if (!counter) return counter.error();
    what += counter_note(*counter);
    return hostapi::to_fields(hostapi::RecordReply{*out});
}

Result<Fields> keep_leaves(const hoststate::Ledger& ledger, const Fields& f) {
    auto q = hostapi::parse_leaves_request(f);
    if (!q) return q.error();
    std::vector<Digest> leaves(q->leaves.size() / 32);
    for (size_t i = 0; i < leaves.size(); ++i)
        std::copy_n(q->leaves.begin() + static_cast<ptrdiff_t>(i * 32), 32, leaves[i].begin());
    Digest root_digest{};
    std::copy(q->root.begin(), q->root.end(), root_digest.begin());
    if (leaves.empty() || merkle::merkle_root(leaves) != root_digest)
        return make_error(rc::kBadParameter, "the page hashes do not make the root given");
    const std::string uuid = uuid_text(q->vm);
    const auto last = ledger.latest(uuid);
    if (!last || last->root != root_digest)
        return make_error(rc::kBadParameter, "VM " + uuid + ": the root is not that of the latest save");
    ledger.keep_leaves(uuid, leaves);
    return Fields{};
}

Result<Fields> leaves_for(const hoststate::Ledger& ledger, const Fields& f) {
    auto q = hostapi::parse_leaves_request(f);
    if (!q) return q.error();
    Digest root_digest{};
    std::copy(q->root.begin(), q->root.end(), root_digest.begin());
    Bytes out;
    if (auto kept = ledger.leaves_for(uuid_text(q->vm), root_digest))
        for (const auto& d : *kept) out.insert(out.end(), d.begin(), d.end());
    return Fields{out};
}

// An EK or platform certificate for a vTPM being manufactured: the daemon
// builds it from the fields (x509::issue_certificate) and signs it. The first
// EK key certified for a VM is bound to it in the ledger (one counter
// increment), so that a peer cannot have a key of its own certified as that
// VM's EK and then use it to prove a software vAIK (VaikChallenge); another
// key needs root.
Result<Fields> issue_tcg_cert(issuance::HostRoot& root, hoststate::Ledger& ledger, const Fields& f, const Peer& peer,
                              std::string& what) {
    auto q = hostapi::parse_tcg_cert_request(f);
    if (!q) return q.error();
    const unsigned char* p = q->subject_public_key.data();
    vtpm::PkeyPtr key(d2i_PUBKEY(nullptr, &p, static_cast<long>(q->subject_public_key.size())));
    if (!key || p != q->subject_public_key.data() + q->subject_public_key.size())
        return make_error(rc::kBadParameter, "the subject public key is not a DER SubjectPublicKeyInfo");
    if (auto r = issuance::check_tcg_cert_request(*q, key.get()); !r) return r.error();
    auto vm = issuance::vm_uuid_in(q->subject_cn);
    if (!vm) return vm.error();
    what = std::string(q->kind == 0 ? "EK" : "platform") + " certificate for " + (*vm ? "VM " + **vm : "no VM");
    std::optional<hoststate::EkBinding> binding;
    hoststate::EkBindingChange change = hoststate::EkBindingChange::Unchanged;
    if (*vm) {
        auto family = issuance::ek_key_family(key.get());
        auto digest = family ? issuance::spki_digest(key.get()) : Result<Digest>(family.error());
        if (!digest) return digest.error();
        binding = ledger.ek_binding(**vm);
        auto c = hoststate::bind_ek(*binding, *family, *digest, peer.uid == 0, **vm);
        if (!c) return c.error();
        change = *c;
    }
    x509::CertRequest req;
    req.kind = q->kind == 0 ? x509::CertKind::Ek : x509::CertKind::Platform;
    req.subject_key = key.get();
    req.tpm2 = q->tpm2;
    req.allow_signing = q->allow_signing;
    req.decryption = q->decryption;
    req.subject_cn = q->subject_cn;
    req.tpm = {q->tpm_manufacturer, q->tpm_model, q->tpm_version};
    req.spec = {q->spec_family, q->spec_level, q->spec_revision};
    req.platform = {q->platform_manufacturer, q->platform_model, q->platform_version};
    req.days = q->days;
    auto issuer = issuance::AuthKeyIssuer::open(root);
    if (!issuer) return issuer.error();
    auto der = x509::issue_certificate(req, **issuer);
    if (!der) return der.error();
    // Bound before the certificate leaves; a VM named nowhere is bound to
    // nothing, and its certificate proves no vAIK (VaikChallenge).
    std::optional<uint64_t> anchored_at;
    if (change != hoststate::EkBindingChange::Unchanged) {
        auto counter =
            ledger_step(root, ledger, [&](uint64_t c) { return ledger.commit_ek_binding(**vm, *binding, c); });
        if (!counter) return counter.error();
        anchored_at = *counter;
    }
    if (change == hoststate::EkBindingChange::Replaced)
        VTPM_LOG_WARN("VM %s: EK key replaced for pid %d uid %u (re-manufactured); the old key proves no vAIK",
                      vm->value().c_str(), static_cast<int>(peer.pid), static_cast<unsigned>(peer.uid));
    if (change == hoststate::EkBindingChange::Bound) what += " (EK key bound)";
    what += counter_note(anchored_at);
    return Fields{*der};
}

// The VMs' uniqueness records live in the ledger, so that the TPM counter
// anchors them like the snapshot generations: a record file put back from
// a copy no longer makes an older generation current. Each change is one
// counter increment (an issuance and its confirmation: two). The file is
// still written, after the ledger, for verifiers given it (vtpm-attest
// verify --host-record), and never read: one planted for a VM the ledger
// does not know would vouch for whatever generation it names.
class LedgerIdentities final : public issuance::IdentityBook {
public:
    LedgerIdentities(issuance::HostRoot& root, hoststate::Ledger& ledger) : root_(root), ledger_(ledger) {}
    Result<hoststate::IdentityRecord> load(const std::string& uuid) override {
        if (auto r = ledger_.identity(uuid)) return *r;
        return make_error(rc::kRetry, "no identity record for VM " + uuid);
    }
    Result<void> save(const hoststate::IdentityRecord& r) override {
        auto counter = ledger_step(root_, ledger_, [&](uint64_t c) { return ledger_.commit_identity(r, c); });
        if (!counter) return counter.error();
        anchored_at = *counter;
        auto files = hoststate::IdentityRecords::open_locked(root_.dir());
        if (!files) return files.error();
        return files->save(r);
    }

    // The counter value of the last change, for the log.
    std::optional<uint64_t> anchored_at;

private:
    issuance::HostRoot& root_;
    hoststate::Ledger& ledger_;
};

// --adopt overrides the identity-clash check (a cloned or older state): an
// operator's act after checking why, so root only and logged as a warning.
Result<Fields> issue_vaik(issuance::HostRoot& root, issuance::VaikChallenges& challenges, hoststate::Ledger& ledger,
                          const Fields& f, const Peer& peer, std::string& what) {
    auto q = hostapi::parse_vaik_request(f);
    if (!q) return q.error();
    what = "VM " + uuid_text(q->vm);
    if (q->adopt && peer.uid != 0)
        return make_error(rc::kFail, "only root may adopt a vTPM state despite an identity clash (--adopt; peer uid " +
                                         std::to_string(peer.uid) + ")");
    LedgerIdentities records(root, ledger);
    auto r = issuance::sign_vaik_identity(root, challenges, records, *q);
    if (q->adopt) {
        const std::string outcome =
            r ? "issued generation " + std::to_string(r->generation) + ", any identity clash overridden"
              : "refused: " + r.error().message;
        VTPM_LOG_WARN("IssueVaik --adopt %s for pid %d uid %u: %s", what.c_str(), static_cast<int>(peer.pid),
                      static_cast<unsigned>(peer.uid), outcome.c_str());
    }
    if (!r) return r.error();
    what += " generation " + std::to_string(r->generation) + counter_note(records.anchored_at);
    return hostapi::to_fields(*r);
}

Result<Fields> confirm_vaik(issuance::HostRoot& root, hoststate::Ledger& ledger, const Fields& f, std::string& what) {
    auto q = hostapi::parse_vaik_confirm(f);
    if (!q) return q.error();
    what = "VM " + uuid_text(q->vm) + " generation " + std::to_string(q->generation);
    LedgerIdentities records(root, ledger);
    if (auto r = issuance::confirm_vaik_identity(records, *q); !r) return r.error();
    what += counter_note(records.anchored_at);
    return Fields{};
}

// A VM's state-at-rest key: unsealed from HOSTDIR/vms/UUID.statekey, which
// opens only in this TPM while the host is in a state the owner approved; or, when
// asked and the VM has none, made from the TPM's and OpenSSL's generators
// (either alone suffices) and kept sealed before it leaves.
Result<Fields> state_key(issuance::HostRoot& root, const Fields& f, std::string& what) {
    auto q = hostapi::parse_state_key_request(f);
    if (!q) return q.error();
    const std::string uuid = uuid_text(q->vm);
    what = "VM " + uuid;
    const hosttpm::HostPolicy& policy = root.policy();
    const std::string name = "VM " + uuid + "'s state key";
    auto sealed = hoststate::read_sealed_state_key(root.dir(), uuid);
    if (!sealed) return sealed.error();
    if (*sealed) {
        auto key = hosttpm::unseal_secret(root.tpm(), **sealed, policy, name);
        if (!key) return key.error();
        what += " (unsealed)";
        return hostapi::to_fields(hostapi::StateKeyReply{false, Bytes(key->view().begin(), key->view().end())});
    }
    if (!q->create) return make_error(rc::kFail, "VM " + uuid + " has no state key on this host");
    auto key = hosttpm::new_auth_value(root.tpm(), name);
    if (!key) return key.error();
    ProtectedBytes mix(key->size());
    if (RAND_priv_bytes(mix.data(), static_cast<int>(mix.size())) != 1)
        return make_error(rc::kFail, "OpenSSL's random generator failed");
    for (size_t i = 0; i < key->size(); ++i) (*key)[i] ^= mix[i];
    auto blob = hosttpm::seal_secret(root.tpm(), *key, policy, name);
    if (!blob) return blob.error();
    if (auto w = hoststate::write_sealed_state_key(root.dir(), uuid, *blob); !w) return w.error();
    what += " (created)";
    return hostapi::to_fields(hostapi::StateKeyReply{true, Bytes(key->view().begin(), key->view().end())});
}

}  // namespace

Result<std::string> Service::open_ledger() {
    auto opened = check_ledger();
    if (!opened) return opened;
    auto imported = import_ek_files();
    if (!imported) return imported.error();
    return *opened + *imported;
}

// Older versions kept each VM's EK binding in HOSTDIR/vms/UUID.ek, a plain
// file: one put back from a copy (or planted) bound an old or foreign key.
// The ledger takes them in once, in one counter increment, and they are
// removed; from then on one found is never read.
Result<std::string> Service::import_ek_files() {
    const auto paths = hoststate::ek_file_paths(root_.dir());
    if (ledger_.book().ek_files_imported) {
        if (!paths.empty())
            VTPM_LOG_WARN("%zu EK binding file(s) ignored (%s%s): the EK bindings live in the ledger", paths.size(),
                          paths.front().c_str(), paths.size() > 1 ? ", ..." : "");
        return std::string();
    }
    auto files = hoststate::read_ek_files(paths);
    if (!files)
        return make_error(rc::kFail, files.error().message +
                                         " (an EK binding kept by an older version; repair it, or remove it and "
                                         "re-manufacture that VM's vTPM as root)");
    auto counter = ledger_step(root_, ledger_, [&](uint64_t c) { return ledger_.import_ek_files(*files, c); });
    if (!counter) return counter.error();
    for (const auto& p : paths)
        if (::unlink(p.c_str()) != 0)
            VTPM_LOG_WARN("cannot remove %s (taken into the ledger, never read again): %s", p.c_str(),
                          std::strerror(errno));
    return "; the EK bindings of " + std::to_string(files->size()) +
           " VM(s) taken into the ledger from HOSTDIR/vms/*.ek" + counter_note(*counter);
}

Result<std::string> Service::check_ledger() {
    auto present = ledger_.load();
    if (!present) return present.error();
    const auto counter = root_.ledger_counter();
    auto tpm = counter.read(root_.tpm());
    if (!tpm) return tpm.error();
    const std::string file = root_.dir() + "/" + hoststate::kLedgerFile;
    if (!*present && !*tpm) {
        auto first = counter.define(root_.tpm());
        if (!first) return first.error();
        if (auto w = ledger_.create(*first); !w) return w.error();
        return "a new ledger, anchored in the host TPM's counter (NV 0x01000010) at " + std::to_string(*first);
    }
    if (!*tpm)
        return make_error(rc::kFail, file + " exists, but the host TPM has no ledger counter (NV 0x01000010): the TPM "
                                            "was cleared, or this is another host's directory");
    const uint64_t have = ledger_.book().counter, want = **tpm;
    if (!*present)
        return make_error(rc::kFail, "the host TPM's ledger counter is at " + std::to_string(want) + ", but " + file +
                                         " is missing: HOSTDIR was replaced or lost its ledger");
    if (have == want) return "ledger at host TPM counter " + std::to_string(want);
    if (have == want + 1) {
        // The daemon stopped between writing the file and moving the counter:
        // that save's signature never left. Finish the move.
        auto moved = counter.increment(root_.tpm());
        if (!moved) return moved.error();
        if (*moved != have) return make_error(rc::kFail, "the host TPM's ledger counter moved to " +
                                                             std::to_string(*moved) + ", expected " + std::to_string(have));
        return "ledger at host TPM counter " + std::to_string(have) + " (an interrupted commit completed)";
    }
    if (have < want)
        return make_error(rc::kFail, file + " belongs to ledger counter " + std::to_string(have) +
                                         ", the host TPM's counter is at " + std::to_string(want) +
                                         ": HOSTDIR was rolled back (an older copy put back)");
    return make_error(rc::kFail, file + " belongs to ledger counter " + std::to_string(have) +
                                     ", ahead of the host TPM's counter (" + std::to_string(want) +
                                     "): another TPM, or a ledger from elsewhere");
}

Result<Service::EkIssuerCerts> Service::trusted_ek_issuers() const {
    EkIssuerCerts out;
    auto add_file = [](std::vector<vtpm::X509Ptr>& to, const std::string& path) -> Result<void> {
        auto certs = x509::read_pem_certificates(path);
        if (!certs) return certs.error();
        for (int i = 0; i < sk_X509_num(certs->get()); ++i) {
            X509* c = sk_X509_value(certs->get(), i);
            X509_up_ref(c);
            to.emplace_back(c);
        }
        return {};
    };
    // The AuthKey signs EK certificates of vTPMs made with certificate_issuer = hosttpm.
    (void)add_file(out.authkey, root_.dir() + "/" + hoststate::kAuthKeyCertFile);
    if (!out.authkey.empty()) (void)add_file(out.authkey, root_.dir() + "/" + hoststate::kCaChainFile);
    if (!ek_ca_.empty()) {
        std::error_code ec;
        if (std::filesystem::is_directory(ek_ca_, ec)) {
            for (const auto& e : std::filesystem::directory_iterator(ek_ca_, ec))
                if (e.path().filename().string().ends_with("cert.pem"))
                    if (auto r = add_file(out.local_ca, e.path().string()); !r) return r.error();
        } else if (auto r = add_file(out.local_ca, ek_ca_); !r) {
            return make_error(rc::kFail, "--ek-ca " + ek_ca_ + ": " + r.error().message);
        }
    }
    return out;
}

// The vTPM's EK certificate checked against the issuers trusted now (one
// from the AuthKey against the VM's EK binding), then a credential wrapped
// to that EK for the vAIK's name.
Result<std::vector<Bytes>> Service::vaik_challenge(const std::vector<Bytes>& f, std::string& what) {
    auto q = hostapi::parse_vaik_challenge_request(f);
    if (!q) return q.error();
    what = "VM " + uuid_text(q->vm);
    auto trusted = trusted_ek_issuers();
    if (!trusted) return trusted.error();
    issuance::EkIssuers issuers;
    for (const auto& c : trusted->authkey) issuers.authkey.push_back(c.get());
    for (const auto& c : trusted->local_ca) issuers.local_ca.push_back(c.get());
    auto r = challenges_.open(*q, issuers, ledger_.ek_binding(uuid_text(q->vm)));
    if (!r) return r.error();
    return hostapi::to_fields(*r);
}

Bytes Service::handle(ByteView body, const Peer& peer) {
    auto m = hostapi::decode_request(body);
    if (!m) {
        VTPM_LOG_WARN("request from pid %d uid %u refused: %s", static_cast<int>(peer.pid),
                      static_cast<unsigned>(peer.uid), m.error().message.c_str());
        return hostapi::encode_failure(0, rc::kBadParameter, m.error().message);
    }
    using hostapi::Kind;
    std::string what;
    Result<Fields> out = make_error(rc::kBadParameter, "unknown request " + hostapi::kind_name(m->kind));
    switch (static_cast<Kind>(m->kind)) {
        case Kind::HostInfo: out = host_info(root_); break;
        case Kind::LedgerLatest: out = ledger_latest(ledger_, m->fields); break;
        case Kind::SignSnapshotRecord: out = sign_record(root_, ledger_, m->fields, what); break;
        case Kind::KeepLeaves: out = keep_leaves(ledger_, m->fields); break;
        case Kind::LeavesFor: out = leaves_for(ledger_, m->fields); break;
        case Kind::IssueTcgCert: out = issue_tcg_cert(root_, ledger_, m->fields, peer, what); break;
        case Kind::IssueVaik: out = issue_vaik(root_, challenges_, ledger_, m->fields, peer, what); break;
        case Kind::VaikChallenge: out = vaik_challenge(m->fields, what); break;
        case Kind::ConfirmVaik: out = confirm_vaik(root_, ledger_, m->fields, what); break;
        case Kind::StateKey: out = state_key(root_, m->fields, what); break;
        case Kind::ConsumeGeneration: out = generation_step(root_, ledger_, m->fields, false, what); break;
        case Kind::RevertGeneration:
            // An operator's act: root only, logged as a warning either way.
            if (peer.uid != 0)
                out = make_error(rc::kFail, "only root may revert a VM's snapshot generation (peer uid " +
                                                std::to_string(peer.uid) + ")");
            else
                out = generation_step(root_, ledger_, m->fields, true, what);
            VTPM_LOG_WARN("RevertGeneration%s%s for pid %d uid %u: %s", what.empty() ? "" : " ", what.c_str(),
                          static_cast<int>(peer.pid), static_cast<unsigned>(peer.uid),
                          out ? "reverted" : out.error().message.c_str());
            break;
        case Kind::ExportStateKey:
            // An operator's act (the key leaves for use outside any bridge):
            // root only, and logged as a warning whatever the outcome.
            if (peer.uid != 0) {
                out = make_error(rc::kFail, "only root may export a state key (peer uid " +
                                                std::to_string(peer.uid) + ")");
            } else if (auto q = hostapi::parse_state_key_request(m->fields); q && q->create) {
                out = make_error(rc::kBadParameter, "ExportStateKey never makes a key");
            } else {
                out = state_key(root_, m->fields, what);
            }
            VTPM_LOG_WARN("ExportStateKey%s%s for pid %d uid %u: %s", what.empty() ? "" : " ", what.c_str(),
                          static_cast<int>(peer.pid), static_cast<unsigned>(peer.uid),
                          out ? "exported" : "refused");
            break;
    }
    const std::string name = hostapi::kind_name(m->kind);
    if (!out) {
        VTPM_LOG_WARN("%s%s%s from pid %d uid %u refused: %s", name.c_str(), what.empty() ? "" : " for ",
                      what.c_str(), static_cast<int>(peer.pid), static_cast<unsigned>(peer.uid),
                      out.error().message.c_str());
        return hostapi::encode_failure(m->kind, out.code() ? out.code() : rc::kFail, out.error().message);
    }
    VTPM_LOG_INFO("%s%s%s for pid %d uid %u", name.c_str(), what.empty() ? "" : " ", what.c_str(),
                  static_cast<int>(peer.pid), static_cast<unsigned>(peer.uid));
    return hostapi::encode_response(m->kind, 0, *out);
}

}  // namespace vtpm::hostd
