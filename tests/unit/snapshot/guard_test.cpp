// The snapshot guard on a real libtpms engine, in-process: records made on
// save and checked on restore, each way a restore can be wrong, the taint
// policy, QEMU's digest, and the whole flow through the control-channel
// dispatcher. Records are signed by a software key here (the host-TPM
// AuthKey signer is exercised by the integration tests).
#include <catch2/catch.hpp>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <signal.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <map>
#include <memory>

#include "tpm/objects.hpp"
#include "core/dispatcher.hpp"
#include "util/ossl.hpp"
#include "tpm/commands.hpp"
#include "snapshot/commands.hpp"
#include "snapshot/guard.hpp"
#include "snapshot/vtpm_pcrs.hpp"
#include "store/blob.hpp"
#include "util/durable_file.hpp"
#include "store/state_store.hpp"
#include "temp_dir.hpp"
#include "util/fd.hpp"

using namespace vtpm;
using namespace vtpm::snapshot;

namespace {

constexpr const char* kUuid = "3f0d9a4e-5b6c-4d7e-8f90-a1b2c3d4e5f6";
constexpr const char* kOther = "9e8d7c6b-5a49-4382-9170-6f5e4d3c2b1a";
constexpr size_t kRam = 8u << 20;  // 2048 pages: two blocks

// ECDSA P-256 in software, in the TPM's signature format.
class SoftSigner final : public RecordSigner {
public:
    SoftSigner(std::shared_ptr<EVP_PKEY> key, uint8_t id) : key_(std::move(key)), name_(34, id) {}
    const Bytes& key_name() const override { return name_; }
    Result<Bytes> sign(const SnapshotRecord& r) override {
        const Bytes message = signed_message(r);
        vtpm::MdCtxPtr ctx(EVP_MD_CTX_new());
        size_t n = 0;
        REQUIRE(EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key_.get()) == 1);
        REQUIRE(EVP_DigestSign(ctx.get(), nullptr, &n, message.data(), message.size()) == 1);
        Bytes der(n);
        REQUIRE(EVP_DigestSign(ctx.get(), der.data(), &n, message.data(), message.size()) == 1);
        const uint8_t* p = der.data();
        ECDSA_SIG* sig = d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(n));
        TPMT_SIGNATURE t{};
        t.sigAlg = TPM2_ALG_ECDSA;
        t.signature.ecdsa.hash = TPM2_ALG_SHA256;
        t.signature.ecdsa.signatureR.size =
            static_cast<UINT16>(BN_bn2binpad(ECDSA_SIG_get0_r(sig), t.signature.ecdsa.signatureR.buffer, 32));
        t.signature.ecdsa.signatureS.size =
            static_cast<UINT16>(BN_bn2binpad(ECDSA_SIG_get0_s(sig), t.signature.ecdsa.signatureS.buffer, 32));
        ECDSA_SIG_free(sig);
        return tpm::marshal_signature(t);
    }
    Result<void> verify(ByteView name, ByteView message, ByteView signature) const override {
        if (!std::equal(name.begin(), name.end(), name_.begin(), name_.end()))
            return make_error(rc::kFail, "the record was signed by another host key");
        auto sig = tpm::unmarshal_signature(signature);
        if (!sig) return sig.error();
        return tpm::verify_signature(key_.get(), message, *sig);
    }
    std::string describe() const override { return "software test key"; }

private:
    std::shared_ptr<EVP_PKEY> key_;
    Bytes name_;
};

// The host's file ledger, as vtpm-hostd keeps it, without the daemon.
class FileLedger final : public SnapshotLedger {
public:
    explicit FileLedger(std::string dir) : l_(std::move(dir), Bytes(32, 0x4c)) { (void)l_.load(); }
    Result<std::optional<hoststate::LedgerEntry>> latest(const std::string& uuid) const override {
        return l_.latest(uuid);
    }
    Result<void> commit(const std::string& uuid, const hoststate::LedgerEntry& e) const override {
        return l_.commit(uuid, e, l_.book().counter + 1);
    }
    Result<void> consume(const std::string& uuid, uint64_t generation, const Digest& root) const override {
        return l_.consume(uuid, generation, root, l_.book().counter + 1);
    }
    void keep_leaves(const std::string& uuid, const Digest&, const std::vector<Digest>& leaves) const override {
        l_.keep_leaves(uuid, leaves);
    }
    std::optional<std::vector<Digest>> leaves_for(const std::string& uuid, const Digest& root) const override {
        return l_.leaves_for(uuid, root);
    }

private:
    mutable hoststate::Ledger l_;
};

// Guest RAM: a file in the test's directory (as a memory-backend-file is),
// mapped writable here and read by the guard through its path.
struct Ram {
    std::string file;
    UniqueFd fd;
    uint8_t* p = nullptr;
    explicit Ram(const std::filesystem::path& dir)
        : file((dir / "guest.ram").string()), fd(::open(file.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) {
        REQUIRE(fd);
        REQUIRE(ftruncate(fd.get(), kRam) == 0);
        p = static_cast<uint8_t*>(mmap(nullptr, kRam, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0));
        REQUIRE(p != MAP_FAILED);
        for (size_t i = 0; i < kRam; i += 64) p[i] = static_cast<uint8_t>(i >> 12);
    }
    ~Ram() { munmap(p, kRam); }
    std::string path() const { return file; }
};

// QEMU in miniature: another process that maps the guest RAM file shared
// (the guard maps files too, so this process cannot stand in for QEMU).
struct Peer {
    pid_t pid = -1;
    explicit Peer(const std::string& file) {
        int ready[2];
        REQUIRE(pipe(ready) == 0);
        pid = fork();
        REQUIRE(pid >= 0);
        if (pid == 0) {
            const int fd = ::open(file.c_str(), O_RDWR | O_CLOEXEC);
            void* p = fd >= 0 ? mmap(nullptr, kRam, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) : MAP_FAILED;
            const char ok = p != MAP_FAILED ? 1 : 0;
            (void)!::write(ready[1], &ok, 1);
            for (;;) pause();
        }
        ::close(ready[1]);
        char ok = 0;
        REQUIRE(::read(ready[0], &ok, 1) == 1);
        ::close(ready[0]);
        REQUIRE(ok == 1);
    }
    ~Peer() {
        kill(pid, SIGKILL);
        waitpid(pid, nullptr, 0);
    }
};

struct Lab {
    TempDir dir;
    Ram ram{dir.path};
    Peer qemu{ram.path()};
    std::unique_ptr<engine::Engine> engine;
    std::map<uint8_t, std::shared_ptr<EVP_PKEY>> keys;  // one key per host
    Lab() {
        std::filesystem::create_directory(dir.path / "state");
        std::filesystem::create_directory(dir.path / "host");
        auto e = engine::Engine::create({}, store::make_dir_store(dir.path / "state", true, 0600, std::nullopt));
        REQUIRE(e);
        engine = std::move(*e);
        REQUIRE(engine->init(false));
        REQUIRE(engine->startup(0));
        extend(10, 0x42);
    }
    ~Lab() { engine->stop(); }
    void extend(uint32_t pcr, uint8_t fill) {
        TPML_DIGEST_VALUES dv{};
        dv.count = 1;
        dv.digests[0].hashAlg = TPM2_ALG_SHA256;
        std::memset(&dv.digests[0].digest, fill, 32);
        REQUIRE(tpm::response_code(engine->command(tpm::pcr_extend(pcr, dv))) == 0);
    }
    Bytes pcr10() {
        auto banks = read_all_pcrs(*engine);
        REQUIRE(banks);
        for (auto& b : *banks)
            if (b.hash_alg == TPM2_ALG_SHA256) return b.values[10];
        FAIL("no sha256 bank");
        return {};
    }
    std::unique_ptr<SnapshotGuard> guard(Policy policy = Policy::Refuse, const char* uuid = kUuid,
                                         uint8_t key = 1, bool required = false, bool memory = true) {
        GuardConfig c;
        c.policy = policy;
        c.required = required;
        c.vm_uuid = *parse_uuid(uuid);
        if (memory) c.memory_path = ram.path();
        auto& k = keys[key];
        if (!k) k.reset(EVP_EC_gen("P-256"), EVP_PKEY_free);
        auto g = std::make_unique<SnapshotGuard>(c, std::make_unique<SoftSigner>(k, key),
                                                 std::make_unique<FileLedger>((dir.path / "host").string()));
        g->set_peer_pid(qemu.pid);
        return g;
    }
    // A guard with verify=before-run that trusts guard()'s key.
    std::unique_ptr<SnapshotGuard> before_run_guard() {
        GuardConfig c = guard()->config();
        c.verify_before_run = true;
        auto g = std::make_unique<SnapshotGuard>(c, std::make_unique<SoftSigner>(keys[1], 1),
                                                 std::make_unique<FileLedger>((dir.path / "host").string()));
        g->set_peer_pid(qemu.pid);
        return g;
    }
    // The plain state as a save exports it.
    SecureBytes plain(engine::BlobType t) {
        auto b = engine->get_state(t);
        REQUIRE(b);
        return b->data;
    }
};

// One signer per test, shared by the guards that should trust each other.
struct Saved {
    Bytes record;
    SecureBytes perm, vol;
};

Saved save(Lab& lab, SnapshotGuard& g) {
    Saved s{{}, lab.plain(engine::BlobType::Permanent), lab.plain(engine::BlobType::Volatile)};
    auto r = g.make_record(*lab.engine, s.perm, s.vol);
    REQUIRE(r);
    REQUIRE(*r);
    s.record = **r;
    return s;
}

std::string refusal(SnapshotGuard& g, const Saved& s, std::optional<ByteView> record = std::nullopt) {
    auto v = g.check_restore(record ? record : std::optional<ByteView>(s.record), sha256({s.perm.view()}), s.vol);
    return v ? "" : v.error().message;
}

}  // namespace

TEST_CASE("guard: a save makes a signed record that its restore accepts") {
    Lab lab;
    auto g = lab.guard();
    const Saved s = save(lab, *g);
    auto rec = parse_record(s.record);
    REQUIRE(rec);
    CHECK(rec->generation == 1);
    CHECK(rec->page_count == kRam / 4096);
    CHECK(rec->block_roots.size() == 2);
    CHECK(rec->quote_attest.empty());  // no vAIK in this vTPM
    bool found = false;
    for (const auto& b : rec->banks)
        if (b.hash_alg == TPM2_ALG_SHA256) found = b.values[10] == lab.pcr10();
    CHECK(found);
    auto v = g->check_restore(s.record, sha256({s.perm.view()}), s.vol);
    REQUIRE(v);
    CHECK_FALSE(v->taint);
    // The next save is the next generation.
    CHECK(parse_record(save(lab, *g).record)->generation == 2);
}

TEST_CASE("guard: changed guest RAM is refused naming the first pages") {
    Lab lab;
    auto g = lab.guard();
    const Saved s = save(lab, *g);
    lab.ram.p[1500 * 4096 + 3] ^= 1;
    lab.ram.p[1700 * 4096] ^= 1;
    const std::string why = refusal(*g, s);
    CHECK(why.find("first differing pages: 1500 (0x5dc000), 1700 (0x6a4000)") != std::string::npos);
    // A page that is zero where the image had data: RAM not there yet.
    std::vector<uint8_t> keep(lab.ram.p + 300 * 4096, lab.ram.p + 301 * 4096);
    std::memset(lab.ram.p + 300 * 4096, 0, 4096);
    const std::string zeroed = refusal(*g, s);
    CHECK(zeroed.find("first differing pages: 300 (0x12c000), 1500") != std::string::npos);
    CHECK(zeroed.find("guest RAM there is zero where the saved image had data") != std::string::npos);
    std::memcpy(lab.ram.p + 300 * 4096, keep.data(), 4096);
    // Without the host's kept leaves the record's block roots still say where.
    std::filesystem::remove(lab.dir.path / "host" / "vms" / (std::string(kUuid) + ".leaves"));
    CHECK(refusal(*g, s).find("blocks of 1024 pages start at pages 1024 (0x400000)") != std::string::npos);
    lab.ram.p[1500 * 4096 + 3] ^= 1;
    lab.ram.p[1700 * 4096] ^= 1;
    CHECK(refusal(*g, s).empty());  // put back: accepted
}

TEST_CASE("guard: records that are not this VM's latest untampered save") {
    Lab lab;
    auto g = lab.guard();
    const Saved first = save(lab, *g);
    const Saved second = save(lab, *g);
    CHECK(refusal(*g, first).find("replayed record: generation 1 is older than the latest save (2)") !=
          std::string::npos);
    CHECK(refusal(*g, second).empty());
    Bytes tampered = second.record;
    tampered[30] ^= 1;  // inside the generation
    CHECK(refusal(*g, second, tampered).find("tampered or foreign record") != std::string::npos);
    CHECK(refusal(*g, second, ByteView(second.record).first(100)).find("truncated") != std::string::npos);
    auto other_vm = lab.guard(Policy::Refuse, kOther);
    CHECK(refusal(*other_vm, second).find(std::string("belongs to VM ") + kUuid) != std::string::npos);
    auto other_host = lab.guard(Policy::Refuse, kUuid, 2);
    CHECK(refusal(*other_host, second).find("another host key") != std::string::npos);
    Saved changed = second;
    changed.vol[changed.vol.size() / 2] ^= 1;
    CHECK(refusal(*g, changed).find("volatile state (vPCRs) is not the one") != std::string::npos);
    changed = second;
    changed.perm[changed.perm.size() / 2] ^= 1;
    CHECK(refusal(*g, changed).find("permanent state is not the one") != std::string::npos);
}

TEST_CASE("guard: taint lets the restore go on and spoils the vPCRs") {
    Lab lab;
    auto g = lab.guard(Policy::Taint);
    const Saved s = save(lab, *g);
    lab.ram.p[42] ^= 1;
    auto v = g->check_restore(s.record, sha256({s.perm.view()}), s.vol);
    REQUIRE(v);
    CHECK(v->taint);
    const Bytes before = lab.pcr10();
    REQUIRE(g->taint(*lab.engine));
    const Bytes once = lab.pcr10();
    CHECK(once != before);
    // Not a value a guest could log: the public event digest of earlier
    // versions does not reproduce it ...
    const std::string old_event = "libvtpm: restored guest memory did not match its snapshot record";
    Bytes with_public(before);
    const Bytes ev = sha256_bytes(ByteView(reinterpret_cast<const uint8_t*>(old_event.data()), old_event.size()));
    with_public.insert(with_public.end(), ev.begin(), ev.end());
    CHECK(once != sha256_bytes(with_public));
    // ... and a second taint changes them again.
    REQUIRE(g->taint(*lab.engine));
    CHECK(lab.pcr10() != once);
}

TEST_CASE("guard: without a record, skip as swtpm for an unknown VM, refuse for a known one") {
    Lab lab;
    // A VM this host never saved: a record-less state (swtpm's) restores,
    // unless verification is required.
    auto fresh = lab.guard(Policy::Refuse, kOther);
    const SecureBytes perm0 = lab.plain(engine::BlobType::Permanent), vol0 = lab.plain(engine::BlobType::Volatile);
    CHECK(fresh->check_restore(std::nullopt, sha256({perm0.view()}), vol0));
    auto fresh_req = lab.guard(Policy::Refuse, kOther, 1, true);
    auto fr = fresh_req->check_restore(std::nullopt, sha256({perm0.view()}), vol0);
    REQUIRE_FALSE(fr);
    CHECK(fr.error().message.find("carries no snapshot record") != std::string::npos);
    // Once the host signed a snapshot of the VM, a stripped record is
    // refused, required or not, and tainted under the taint policy.
    auto g = lab.guard();
    const Saved s = save(lab, *g);
    auto v = g->check_restore(std::nullopt, sha256({s.perm.view()}), s.vol);
    REQUIRE_FALSE(v);
    CHECK(v.error().message.find("carries no snapshot record, but this host signed generation 1") !=
          std::string::npos);
    auto t = lab.guard(Policy::Taint);
    auto tv = t->check_restore(std::nullopt, sha256({s.perm.view()}), s.vol);
    REQUIRE(tv);
    CHECK(tv->taint);
    // No memory configured: no record on save, unless required.
    auto nomem = lab.guard(Policy::Refuse, kUuid, 1, false, false);
    auto none = nomem->make_record(*lab.engine, s.perm, s.vol);
    REQUIRE(none);
    CHECK_FALSE(*none);
    auto nomem_req = lab.guard(Policy::Refuse, kUuid, 1, true, false);
    CHECK_FALSE(nomem_req->make_record(*lab.engine, s.perm, s.vol));
    auto skip = lab.guard(Policy::Skip);
    CHECK_FALSE(*skip->make_record(*lab.engine, s.perm, s.vol));
}

TEST_CASE("guard: a patched QEMU's RAM digest stands in for the mapping") {
    Lab lab;
    auto g = lab.guard(Policy::Refuse, kUuid, 1, false, false);
    QemuDigest d;
    d.page_count = 65536;
    d.root[0] = 0x99;
    g->set_qemu_digest(kPhaseSave, d);
    const Saved s = save(lab, *g);
    auto rec = parse_record(s.record);
    REQUIRE(rec);
    CHECK(rec->source == DigestSource::Qemu);
    CHECK(rec->root == d.root);
    // Nothing from QEMU for the restore yet: not verifiable, so refused (the
    // host knows this VM), required or not.
    CHECK(refusal(*g, s).find("QEMU handed over no RAM digest") != std::string::npos);
    g->set_qemu_digest(kPhaseRestore, d);
    CHECK(refusal(*g, s).empty());
    d.root[1] = 1;
    g->set_qemu_digest(kPhaseRestore, d);
    CHECK(refusal(*g, s).find("QEMU's RAM digest differs") != std::string::npos);
    // Required as well: the same.
    auto req = lab.guard(Policy::Refuse, kUuid, 1, true, false);
    req->set_qemu_digest(kPhaseSave, d);
    const Saved s2 = save(lab, *req);
    CHECK(refusal(*req, s2).find("QEMU handed over no RAM digest") != std::string::npos);
}

// QEMU's side of the control channel, for the dispatcher tests.
// A bridge's dispatcher with the guard attached, and QEMU's side of its
// control channel.
struct Qemu {
    core::Dispatcher d;
    core::TransportState ts{};
    Qemu(Lab& lab, SnapshotGuard& g, bool vendor_commands = false) : d(*lab.engine, config(vendor_commands)) {
        snapshot::attach(d, g);
    }
    static core::DispatcherConfig config(bool vendor_commands) {
        core::DispatcherConfig c;
        c.vendor_commands = vendor_commands;
        return c;
    }
    uint32_t send(const ctrl::Request& r) {
        return load_be32(d.handle_message(ctrl::encode_request(r), ts).bytes.data());
    }
    Bytes fetch(uint32_t type) {
        auto rep = d.handle_message(ctrl::encode_request(ctrl::GetStateBlobReq{1, type, 0}), ts);
        REQUIRE(load_be32(rep.bytes.data()) == 0);
        return Bytes(rep.bytes.begin() + 16, rep.bytes.end());
    }
};

TEST_CASE("guard: through the dispatcher, as QEMU saves and restores") {
    Lab lab;
    // A mark of this TPM in its permanent state: an NV index.
    constexpr uint32_t kMark = 0x01500000;
    REQUIRE(tpm::response_code(lab.engine->command(
                tpm::nv_define_space(kMark, TPMA_NV_PPWRITE | TPMA_NV_PPREAD | TPMA_NV_PLATFORMCREATE, 8))) == 0);
    auto g = lab.guard();
    Qemu q(lab, *g);
    core::Dispatcher& d = q.d;
    const core::TransportState& ts = q.ts;
    const Bytes perm = q.fetch(1), vol = q.fetch(2);
    CHECK(store::find_blob_tlv(vol, kTagSnapshotRecord));
    CHECK_FALSE(store::find_blob_tlv(perm, kTagSnapshotRecord));
    const Bytes pcr = lab.pcr10();
    auto set = [&](uint32_t type, const Bytes& b) { return q.send(ctrl::SetStateBlobReq{0, type, b}); };
    const std::string permall = (lab.dir.path / "state" / "tpm2-00.permall").string();
    REQUIRE(load_be32(d.handle_message(ctrl::encode_request(ctrl::StopReq{}), ts).bytes.data()) == 0);
    const auto on_disk = read_whole_file(permall);
    REQUIRE(on_disk);
    // Tampered RAM: SET_STATEBLOB volatile fails, the disk keeps its state.
    lab.ram.p[77 * 4096] ^= 1;
    CHECK(set(1, perm) == 0);
    CHECK(set(2, vol) == rc::kFail);
    CHECK(*read_whole_file(permall) == *on_disk);
    // And a CMD_INIT right after the refusal starts the TPM from that state:
    // it must not take the refused restore for "no permanent state" and
    // manufacture a new TPM over the one on disk.
    REQUIRE(load_be32(d.handle_message(ctrl::encode_request(ctrl::InitReq{0}), ts).bytes.data()) == 0);
    REQUIRE(tpm::response_code(d.tpm_command(tpm::startup(TPM2_SU_CLEAR))) == 0);
    CHECK(tpm::response_code(d.tpm_command(tpm::nv_read_public(kMark))) == 0);  // the same TPM
    REQUIRE(load_be32(d.handle_message(ctrl::encode_request(ctrl::StopReq{}), ts).bytes.data()) == 0);
    lab.ram.p[77 * 4096] ^= 1;
    // The right image: accepted, INIT brings the vPCRs back.
    CHECK(set(1, perm) == 0);
    CHECK(set(2, vol) == 0);
    REQUIRE(load_be32(d.handle_message(ctrl::encode_request(ctrl::InitReq{1}), ts).bytes.data()) == 0);
    CHECK(lab.pcr10() == pcr);
    // CMD_VTPM_SNAPSHOT: a record on demand, the next generation.
    auto snap = d.handle_message(ctrl::encode_request(ctrl::VendorSnapshotReq{}), ts).bytes;
    CHECK(load_be32(snap.data()) == rc::kBadOrdinal);  // vendor commands are off
    core::DispatcherConfig dv;
    dv.vendor_commands = true;
    core::Dispatcher dven(*lab.engine, dv);
    snapshot::attach(dven, *g);
    CHECK((dven.capabilities() & (ctrl::cap::kVtpmRamDigest | ctrl::cap::kVtpmSnapshot)) ==
          (ctrl::cap::kVtpmRamDigest | ctrl::cap::kVtpmSnapshot));
    snap = dven.handle_message(ctrl::encode_request(ctrl::VendorSnapshotReq{}), ts).bytes;
    REQUIRE(load_be32(snap.data()) == 0);
    REQUIRE(load_be32(snap.data() + 4) == snap.size() - 8);
    auto on_demand = parse_record(ByteView(snap).subspan(8));
    REQUIRE(on_demand);
    CHECK(on_demand->generation == 2);
    // A blob continued at an offset is the same blob, not a new record.
    auto a = d.handle_message(ctrl::encode_request(ctrl::GetStateBlobReq{1, 2, 0}), ts).bytes;
    auto b = d.handle_message(ctrl::encode_request(ctrl::GetStateBlobReq{1, 2, 100}), ts).bytes;
    CHECK(Bytes(b.begin() + 16, b.end()) == Bytes(a.begin() + 16 + 100, a.end()));
    // A stopped TPM makes no record: "not running".
    REQUIRE(load_be32(dven.handle_message(ctrl::encode_request(ctrl::StopReq{}), ts).bytes.data()) == 0);
    CHECK(load_be32(dven.handle_message(ctrl::encode_request(ctrl::VendorSnapshotReq{}), ts).bytes.data()) ==
          rc::kBadOrdinal);
}

TEST_CASE("guard: a taint decided in a restore sticks; a refusal drops every blob of the restore") {
    Lab lab;
    auto g = lab.guard(Policy::Taint);
    Qemu q(lab, *g);
    const Bytes perm = q.fetch(1), vol = q.fetch(2);
    const Bytes pcr = lab.pcr10();
    REQUIRE(q.send(ctrl::StopReq{}) == 0);
    // Tampered RAM: accepted under taint; then the RAM is put right and the
    // same blob set again (a check that passes). The taint must survive.
    lab.ram.p[77 * 4096] ^= 1;
    CHECK(q.send(ctrl::SetStateBlobReq{0, 1, perm}) == 0);
    CHECK(q.send(ctrl::SetStateBlobReq{0, 2, vol}) == 0);
    lab.ram.p[77 * 4096] ^= 1;
    CHECK(q.send(ctrl::SetStateBlobReq{0, 2, vol}) == 0);
    REQUIRE(q.send(ctrl::InitReq{0}) == 0);
    CHECK(lab.pcr10() != pcr);  // tainted

    // Refused mid-restore (refuse policy): the volatile blob accepted before
    // the refusal does not reach the TPM either; INIT starts from the disk.
    auto r = lab.guard(Policy::Refuse);
    Qemu q2(lab, *r);
    const Bytes perm2 = q2.fetch(1), vol2 = q2.fetch(2);
    REQUIRE(q2.send(ctrl::StopReq{}) == 0);
    CHECK(q2.send(ctrl::SetStateBlobReq{0, 1, perm2}) == 0);
    CHECK(q2.send(ctrl::SetStateBlobReq{0, 2, vol2}) == 0);  // good
    lab.ram.p[5 * 4096] ^= 1;
    CHECK(q2.send(ctrl::SetStateBlobReq{0, 2, vol2}) == rc::kFail);  // now refused
    lab.ram.p[5 * 4096] ^= 1;
    REQUIRE(q2.send(ctrl::InitReq{0}) == 0);
    // The TPM came up from the disk (no saved volatile state there: it waits
    // for TPM2_Startup), not from the volatile blob accepted before the
    // refusal (which would answer with the saved vPCRs).
    const Bytes rsp = lab.engine->command(tpm::pcr_read(tpm::pcr_selection(TPM2_ALG_SHA256, {10})));
    CHECK(tpm::response_code(rsp) == TPM2_RC_INITIALIZE);
}

TEST_CASE("guard: guest memory is never opened through a symlink") {
    Lab lab;
    const auto link = lab.dir.path / "ram-link";
    std::filesystem::create_symlink(lab.ram.path(), link);
    auto m = GuestMemory::open_file(link.string());
    REQUIRE_FALSE(m);
    CHECK(m.error().message.find("cannot open guest memory " + link.string()) != std::string::npos);
    CHECK(GuestMemory::open_file(lab.ram.path()));  // the file itself opens
}

namespace {

// A QEMU-style restore of the blobs `q` fetched: STOP, both SET_STATEBLOBs, INIT.
void restore_through(Qemu& q, const Bytes& perm, const Bytes& vol) {
    REQUIRE(q.send(ctrl::StopReq{}) == 0);
    REQUIRE(q.send(ctrl::SetStateBlobReq{0, 1, perm}) == 0);
    REQUIRE(q.send(ctrl::SetStateBlobReq{0, 2, vol}) == 0);
    REQUIRE(q.send(ctrl::InitReq{0}) == 0);
}

std::pair<uint32_t, std::string> verify_ram(core::Dispatcher& d) {
    auto rep = d.handle_message(ctrl::encode_request(ctrl::VendorVerifyRamReq{}), core::TransportState{}).bytes;
    REQUIRE(rep.size() >= 8);
    return {load_be32(rep.data()), std::string(rep.begin() + 8, rep.end())};
}

uint32_t pcr_read_rc(core::Dispatcher& d) {
    return tpm::response_code(d.tpm_command(tpm::pcr_read(tpm::pcr_selection(TPM2_ALG_SHA256, {10}))));
}

}  // namespace

TEST_CASE("guard: the final verification catches RAM changed after the TPM state was loaded") {
    Lab lab;
    auto g = lab.guard();
    Qemu q(lab, *g, true);
    core::Dispatcher& d = q.d;
    CHECK((d.capabilities() & ctrl::cap::kVtpmVerifyRam) != 0);
    const Bytes perm = q.fetch(1), vol = q.fetch(2);
    const Bytes pcr = lab.pcr10();
    const std::string permall = (lab.dir.path / "state" / "tpm2-00.permall").string();

    // Nothing restored yet: nothing to verify.
    CHECK(verify_ram(d).first == rc::kFail);

    // Checked at load, then a later section of the stream changes page 1500.
    REQUIRE(q.send(ctrl::StopReq{}) == 0);  // its TPM2_Shutdown is written before the restore begins
    const auto on_disk = read_whole_file(permall);
    REQUIRE(on_disk);
    restore_through(q, perm, vol);
    CHECK(lab.engine->holding_writes());  // nothing of the restore on disk before the final verification
    lab.ram.p[1500 * 4096 + 8] ^= 1;
    auto [rc1, why] = verify_ram(d);
    CHECK(rc1 == rc::kFail);
    CHECK(why.find("changed after the TPM state was loaded: first differing pages: 1500 (0x5dc000)") !=
          std::string::npos);
    // Refused: every TPM command gets TPM_FAILURE, no record is made, the
    // TPM went off without writing its state.
    CHECK(pcr_read_rc(d) == TPM2_RC_FAILURE);
    CHECK(load_be32(d.handle_message(ctrl::encode_request(ctrl::VendorSnapshotReq{}), q.ts).bytes.data()) != 0);
    CHECK(*read_whole_file(permall) == *on_disk);
    CHECK_FALSE(lab.engine->holding_writes());  // discarded
    CHECK(verify_ram(d).first == rc::kFail);
    // A plain INIT does not lift the refusal; a restore verified at load does.
    REQUIRE(q.send(ctrl::InitReq{0}) == 0);
    CHECK(pcr_read_rc(d) == TPM2_RC_FAILURE);
    lab.ram.p[1500 * 4096 + 8] ^= 1;
    restore_through(q, perm, vol);
    CHECK(verify_ram(d) == std::pair<uint32_t, std::string>{0, ""});
    CHECK_FALSE(lab.engine->holding_writes());  // verified: written
    CHECK(verify_ram(d).first == 0);  // still before run: the same answer
    CHECK(pcr_read_rc(d) == 0);
    CHECK(lab.pcr10() == pcr);
    // The guest ran: a final verification means nothing any more.
    CHECK(verify_ram(d).first == rc::kFail);
}

TEST_CASE("guard: verify=before-run holds TPM commands until the final verification; taint extends") {
    Lab lab;
    auto g = lab.before_run_guard();
    Qemu q(lab, *g, true);
    core::Dispatcher& d = q.d;
    const Bytes perm = q.fetch(1), vol = q.fetch(2);
    const Bytes pcr = lab.pcr10();
    restore_through(q, perm, vol);
    CHECK(pcr_read_rc(d) == TPM2_RC_FAILURE);  // not verified before run yet
    auto host = d.handle_message(ctrl::encode_request(ctrl::VendorTpmCommandReq{
                                     tpm::pcr_read(tpm::pcr_selection(TPM2_ALG_SHA256, {10}))}),
                                 q.ts);
    CHECK(load_be32(host.bytes.data()) == rc::kFail);  // nor the host's commands
    CHECK(verify_ram(d).first == 0);
    CHECK(pcr_read_rc(d) == 0);
    CHECK(lab.pcr10() == pcr);

    // Policy taint: the failed final verification extends the vPCRs.
    auto t = lab.guard(Policy::Taint);
    Qemu qt(lab, *t, true);
    core::Dispatcher& dt = qt.d;
    const Bytes perm2 = qt.fetch(1), vol2 = qt.fetch(2);
    const Bytes pcr2 = lab.pcr10();
    restore_through(qt, perm2, vol2);
    lab.ram.p[3 * 4096] ^= 1;
    auto [rc2, why] = verify_ram(dt);
    CHECK(rc2 == rc::kFail);
    CHECK(why.find("vPCRs tainted") != std::string::npos);
    CHECK(pcr_read_rc(dt) == 0);  // the TPM runs on, spoilt
    CHECK(lab.pcr10() != pcr2);
    lab.ram.p[3 * 4096] ^= 1;

    // A patched QEMU's phase 3 runs the same check on its own digest.
    auto gq = lab.guard(Policy::Refuse, kUuid, 1, false, false);
    Qemu qq(lab, *gq, true);
    core::Dispatcher& dq = qq.d;
    ctrl::VendorRamDigestReq rd;
    rd.phase = kPhaseSave;
    rd.hash_alg = 0x000B;
    rd.page_size = 4096;
    rd.page_count = 2048;
    rd.root.fill(0x5a);
    REQUIRE(qq.send(rd) == 0);
    const Bytes perm3 = qq.fetch(1), vol3 = qq.fetch(2);
    rd.phase = kPhaseRestore;
    REQUIRE(qq.send(rd) == 0);
    restore_through(qq, perm3, vol3);
    rd.phase = kPhaseFinal;
    rd.root[0] ^= 1;
    CHECK(qq.send(rd) == rc::kFail);  // QEMU fails the incoming migration
    CHECK(pcr_read_rc(dq) == TPM2_RC_FAILURE);
    rd.root[0] ^= 1;
    rd.phase = kPhaseRestore;
    REQUIRE(qq.send(rd) == 0);
    restore_through(qq, perm3, vol3);
    rd.phase = kPhaseFinal;
    CHECK(qq.send(rd) == 0);
    CHECK(verify_ram(dq).first == 0);  // a driver asking again: verified already
    CHECK(pcr_read_rc(dq) == 0);
}

TEST_CASE("guard: a save while a restore awaits its final verification never signs unchecked RAM") {
    Lab lab;
    const auto generation_of = [](const Bytes& vol) {
        auto tlv = store::find_blob_tlv(vol, kTagSnapshotRecord);
        REQUIRE(tlv);
        auto r = parse_record(*tlv);
        REQUIRE(r);
        return r->generation;
    };
    const auto latest = [&] {
        auto l = FileLedger((lab.dir.path / "host").string()).latest(kUuid);
        REQUIRE(l);
        REQUIRE(*l);
        return (*l)->generation;
    };
    {
        // verify=before-run: a later section of the stream changed RAM after
        // the check at load. A save now would sign that RAM as generation 2
        // and the edit would verify from then on: refused, by QEMU's save and
        // by CMD_VTPM_SNAPSHOT alike, until the final verification.
        auto g = lab.before_run_guard();
        Qemu q(lab, *g, true);
        const Bytes perm = q.fetch(1), vol = q.fetch(2);
        CHECK(generation_of(vol) == 1);
        restore_through(q, perm, vol);
        lab.ram.p[1500 * 4096 + 8] ^= 1;
        auto rep = q.d.handle_message(ctrl::encode_request(ctrl::GetStateBlobReq{1, 2, 0}), q.ts);
        CHECK(load_be32(rep.bytes.data()) == rc::kFail);
        CHECK(load_be32(q.d.handle_message(ctrl::encode_request(ctrl::VendorSnapshotReq{}), q.ts).bytes.data()) != 0);
        CHECK(latest() == 1);
        CHECK(verify_ram(q.d).first == rc::kFail);  // the edit is still caught
        lab.ram.p[1500 * 4096 + 8] ^= 1;
        // Verified, the same RAM saves again.
        restore_through(q, perm, vol);
        REQUIRE(verify_ram(q.d).first == 0);
        CHECK(generation_of(q.fetch(2)) == 2);
    }
    {
        // verify=load: a save before the guest's first command puts the
        // restore to use, as that command would; the guest then runs on.
        auto g = lab.guard();
        Qemu q(lab, *g, true);
        const Bytes perm = q.fetch(1), vol = q.fetch(2);
        const uint64_t n = generation_of(vol);
        restore_through(q, perm, vol);
        CHECK(lab.engine->holding_writes());
        CHECK(generation_of(q.fetch(2)) == n + 1);
        CHECK_FALSE(lab.engine->holding_writes());
        CHECK(pcr_read_rc(q.d) == 0);  // not taken for a second use of generation n
        REQUIRE(q.send(ctrl::StopReq{}) == 0);
        REQUIRE(q.send(ctrl::SetStateBlobReq{0, 1, perm}) == 0);
        CHECK(q.send(ctrl::SetStateBlobReq{0, 2, vol}) == rc::kFail);  // n is older than the latest save
    }
}

TEST_CASE("guard: a volatile state on disk is a restore without a record; none of a restore is stored") {
    Lab lab;
    const std::string volfile = (lab.dir.path / "state" / "tpm2-00.volatilestate").string();
    {
        auto g = lab.guard();
        Qemu q(lab, *g, true);
        // A VM this host never saved resumes from it, as with swtpm (logged).
        REQUIRE(q.send(ctrl::StoreVolatileReq{}) == 0);
        REQUIRE(std::filesystem::exists(volfile));
        REQUIRE(q.send(ctrl::StopReq{}) == 0);
        CHECK(q.send(ctrl::InitReq{0}) == 0);
        // Once the host signed a save of the VM, vPCRs stored by
        // CMD_STORE_VOLATILE (or a compromised QEMU, or a copy planted in the
        // directory) would come back at the next reset unchecked: refused,
        // with or without QEMU's delete-volatile flag, the file left as it is.
        (void)q.fetch(1), (void)q.fetch(2);
        REQUIRE(q.send(ctrl::StoreVolatileReq{}) == 0);
        const auto before = read_whole_file(volfile);
        REQUIRE(before);
        REQUIRE(q.send(ctrl::StopReq{}) == 0);
        CHECK(q.send(ctrl::InitReq{0}) == rc::kFail);
        CHECK(q.send(ctrl::InitReq{ctrl::kInitFlagDeleteVolatile}) == rc::kFail);
        CHECK(*read_whole_file(volfile) == *before);
        CHECK(pcr_read_rc(q.d) != 0);  // no TPM came up
        // Removed by the operator: the TPM starts from its permanent state.
        std::filesystem::remove(volfile);
        CHECK(q.send(ctrl::InitReq{0}) == 0);
    }
    {
        // Policy taint: it comes up on them, spoilt.
        auto t = lab.guard(Policy::Taint);
        Qemu q(lab, *t, true);
        REQUIRE(q.send(ctrl::InitReq{0}) == 0);
        REQUIRE(tpm::response_code(q.d.tpm_command(tpm::startup(TPM2_SU_CLEAR))) == 0);
        lab.extend(10, 0x42);
        REQUIRE(q.send(ctrl::StoreVolatileReq{}) == 0);
        const Bytes pcr = lab.pcr10();
        REQUIRE(q.send(ctrl::StopReq{}) == 0);
        REQUIRE(q.send(ctrl::InitReq{ctrl::kInitFlagDeleteVolatile}) == 0);
        CHECK(lab.pcr10() != pcr);
        CHECK_FALSE(std::filesystem::exists(volfile));
    }
    {
        // What a restore awaiting its final verification runs on is not
        // stored this way either, until it passed.
        auto b = lab.before_run_guard();
        Qemu q(lab, *b, true);
        const Bytes perm = q.fetch(1), vol = q.fetch(2);
        restore_through(q, perm, vol);
        CHECK(q.send(ctrl::StoreVolatileReq{}) == rc::kFail);
        CHECK_FALSE(std::filesystem::exists(volfile));
        REQUIRE(verify_ram(q.d).first == 0);
        CHECK(q.send(ctrl::StoreVolatileReq{}) == 0);
        CHECK(std::filesystem::exists(volfile));
    }
}

TEST_CASE("a path= file must be the RAM the control socket's peer maps") {
    Lab lab;
    auto g = lab.guard();
    Saved s = save(lab, *g);
    // A copy of the saved RAM that nobody runs on: the bridge must not be
    // pointed at it while QEMU runs on edited memory.
    const std::string copy = (lab.dir.path / "copy.ram").string();
    std::filesystem::copy_file(lab.ram.path(), copy);
    GuardConfig c = g->config();
    c.memory_path = copy;
    auto& k = lab.keys[1];
    SnapshotGuard other(c, std::make_unique<SoftSigner>(k, 1),
                        std::make_unique<FileLedger>((lab.dir.path / "host").string()));
    other.set_peer_pid(lab.qemu.pid);
    const std::string why = refusal(other, s);
    INFO(why);
    CHECK(why.find("is not mapped shared by the control socket's peer") != std::string::npos);
    // No peer known (a TCP control channel): the check cannot be made, so it refuses.
    SnapshotGuard blind(g->config(), std::make_unique<SoftSigner>(k, 1),
                        std::make_unique<FileLedger>((lab.dir.path / "host").string()));
    CHECK(refusal(blind, s).find("the control socket's peer is not known") != std::string::npos);
    // The real one still passes.
    CHECK(refusal(*g, s).empty());
}

TEST_CASE("guard: a save restores once; the operator's revert lets it restore again") {
    Lab lab;
    auto g = lab.guard();
    Qemu q(lab, *g, true);
    core::Dispatcher& d = q.d;
    const Bytes perm = q.fetch(1), vol = q.fetch(2);
    const Bytes pcr = lab.pcr10();

    // Restored, and the guest's first command puts it to use: consumed.
    restore_through(q, perm, vol);
    CHECK(pcr_read_rc(d) == 0);
    CHECK(lab.pcr10() == pcr);

    // The same image again (its NV counters and lockout would roll back): refused.
    REQUIRE(q.send(ctrl::StopReq{}) == 0);
    REQUIRE(q.send(ctrl::SetStateBlobReq{0, 1, perm}) == 0);
    CHECK(q.send(ctrl::SetStateBlobReq{0, 2, vol}) != 0);

    // Refused before it ran, a restore is not consumed: after the operator's
    // revert (in the daemon; here the ledger itself) it restores, once.
    hoststate::Ledger l((lab.dir.path / "host").string(), Bytes(32, 0x4c));
    REQUIRE(l.load());
    const uint64_t gen = l.latest(kUuid)->generation;
    REQUIRE(l.revert(kUuid, gen, l.book().counter + 1));
    auto g2 = lab.guard();
    Qemu q2(lab, *g2, true);
    core::Dispatcher& d2 = q2.d;
    restore_through(q2, perm, vol);
    CHECK(pcr_read_rc(d2) == 0);
    CHECK(lab.pcr10() == pcr);
    REQUIRE(l.load());
    CHECK(l.latest(kUuid)->restored);
}

// A restore is judged as a whole, not blob by blob: what QEMU would never
// send, a control client can (swtpm_ioctl --load, an edited stream).
TEST_CASE("guard: a restore without its checked volatile state, or with another permanent state, is refused") {
    Lab lab;
    constexpr uint32_t kMark = 0x01500001;  // in generation 2's NV only
    auto g = lab.guard();
    Qemu q(lab, *g);
    core::Dispatcher& d = q.d;
    const Bytes perm1 = q.fetch(1), vol1 = q.fetch(2);
    REQUIRE(tpm::response_code(lab.engine->command(
                tpm::nv_define_space(kMark, TPMA_NV_PPWRITE | TPMA_NV_PPREAD | TPMA_NV_PLATFORMCREATE, 8))) == 0);
    const Bytes perm2 = q.fetch(1), vol2 = q.fetch(2);  // the latest save
    auto set = [&](uint32_t type, const Bytes& b) { return q.send(ctrl::SetStateBlobReq{0, type, b}); };
    auto init_from_disk = [&] {
        REQUIRE(q.send(ctrl::InitReq{0}) == 0);
        REQUIRE(tpm::response_code(d.tpm_command(tpm::startup(TPM2_SU_CLEAR))) == 0);
        CHECK(tpm::response_code(d.tpm_command(tpm::nv_read_public(kMark))) == 0);  // generation 2's NV
    };
    REQUIRE(q.send(ctrl::StopReq{}) == 0);

    // The checked permanent state replaced after the check by an older one.
    CHECK(set(1, perm2) == 0);
    CHECK(set(2, vol2) == 0);
    CHECK(set(1, perm1) == rc::kFail);
    init_from_disk();
    REQUIRE(q.send(ctrl::StopReq{}) == 0);

    // A permanent state alone: refused at CMD_INIT, the TPM stays stopped,
    // and a plain CMD_INIT then starts from the disk.
    CHECK(set(1, perm1) == 0);
    CHECK(q.send(ctrl::InitReq{0}) == rc::kFail);
    CHECK_FALSE(lab.engine->running());
    init_from_disk();
    REQUIRE(q.send(ctrl::StopReq{}) == 0);

    // An empty volatile blob is a volatile state without a record.
    CHECK(set(1, perm2) == 0);
    CHECK(set(2, Bytes{}) == rc::kFail);
    init_from_disk();
    REQUIRE(q.send(ctrl::StopReq{}) == 0);

    // A blob libtpms refuses after the checked one (a TPM 2 has no
    // savestate), or one that cannot be read: the restore is over and
    // consumed nothing, so the right image still restores.
    for (const Bytes& bad : {perm2, Bytes(64, 0x5a)}) {
        CHECK(set(1, perm2) == 0);
        CHECK(set(2, vol2) == 0);
        CHECK(set(3, bad) != 0);
        init_from_disk();
        REQUIRE(q.send(ctrl::StopReq{}) == 0);
    }
    restore_through(q, perm2, vol2);
    CHECK(pcr_read_rc(d) == 0);
}

TEST_CASE("guard: a reset or power-off before the first command puts a restore to use: it restores once") {
    Lab lab;
    auto g = lab.guard();
    Qemu q(lab, *g);
    core::Dispatcher& d = q.d;
    const Bytes perm = q.fetch(1), vol = q.fetch(2);
    restore_through(q, perm, vol);
    REQUIRE(q.send(ctrl::InitReq{0}) == 0);  // a reset, no TPM command yet
    REQUIRE(q.send(ctrl::StopReq{}) == 0);
    REQUIRE(q.send(ctrl::SetStateBlobReq{0, 1, perm}) == 0);
    CHECK(q.send(ctrl::SetStateBlobReq{0, 2, vol}) == rc::kFail);  // consumed by the reset

    const Bytes perm2 = [&] {
        REQUIRE(q.send(ctrl::InitReq{0}) == 0);
        REQUIRE(tpm::response_code(d.tpm_command(tpm::startup(TPM2_SU_CLEAR))) == 0);
        return q.fetch(1);
    }();
    const Bytes vol2 = q.fetch(2);
    restore_through(q, perm2, vol2);
    REQUIRE(q.send(ctrl::StopReq{}) == 0);  // the power-off before any command
    REQUIRE(q.send(ctrl::SetStateBlobReq{0, 1, perm2}) == 0);
    CHECK(q.send(ctrl::SetStateBlobReq{0, 2, vol2}) == rc::kFail);

    // A power-off whose consumption fails (the ledger moved on: a newer
    // save) keeps the restored state all the same: the guest may have run
    // on it, and a migration's destination has no other.
    REQUIRE(q.send(ctrl::InitReq{0}) == 0);
    REQUIRE(tpm::response_code(d.tpm_command(tpm::startup(TPM2_SU_CLEAR))) == 0);
    const Bytes perm4 = q.fetch(1), vol4 = q.fetch(2);
    const Bytes restored = lab.pcr10();
    lab.extend(10, 0x77);  // what the disk holds after the next STOP
    restore_through(q, perm4, vol4);
    (void)save(lab, *g);  // a newer generation: consuming the restore fails
    REQUIRE(q.send(ctrl::StopReq{}) == 0);
    REQUIRE(q.send(ctrl::InitReq{0}) == 0);
    REQUIRE(tpm::response_code(d.tpm_command(tpm::startup(TPM2_SU_STATE))) == 0);
    CHECK(lab.pcr10() == restored);

    // verify=before-run: a reset before the final verification refuses the
    // restore instead (it never ran), and the TPM answers nothing.
    auto gb = lab.before_run_guard();
    Qemu qb(lab, *gb, true);
    core::Dispatcher& db = qb.d;
    REQUIRE(qb.send(ctrl::InitReq{0}) == 0);
    REQUIRE(tpm::response_code(db.tpm_command(tpm::startup(TPM2_SU_CLEAR))) == 0);
    const Bytes perm3 = qb.fetch(1), vol3 = qb.fetch(2);
    restore_through(qb, perm3, vol3);
    CHECK(qb.send(ctrl::InitReq{0}) == rc::kFail);
    CHECK(pcr_read_rc(db) == TPM2_RC_FAILURE);
    CHECK(verify_ram(db).first == rc::kFail);  // nothing awaits a final verification now
}
