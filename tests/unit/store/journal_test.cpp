// The permanent-state journal: its codec, and the directory store's use of
// it across crashes (a copy of the directory taken while a bridge runs is
// what a kill -9 leaves; an older state file beside it is what a power cut
// leaves), torn records, foreign writers and damaged headers.
#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "store/journal_format.hpp"
#include "store/state_file.hpp"
#include "store/state_store.hpp"
#include "temp_dir.hpp"

using namespace vtpm;
using namespace vtpm::store;
namespace fs = std::filesystem;

namespace {

Bytes pattern(size_t n, uint8_t seed) {
    Bytes b(n);
    for (size_t i = 0; i < n; ++i) b[i] = static_cast<uint8_t>(i * 7 + seed);
    return b;
}

Bytes slurp(const fs::path& p) {
    std::ifstream f(p, std::ios::binary);
    return Bytes(std::istreambuf_iterator<char>(f), {});
}

void spit(const fs::path& p, const Bytes& b) {
    std::ofstream f(p, std::ios::binary | std::ios::trunc);
    f.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

// What a process killed now would leave: the files as they are.
void copy_dir(const fs::path& from, const fs::path& to) {
    for (const auto& e : fs::directory_iterator(from))
        if (e.path().filename() != ".lock") fs::copy_file(e.path(), to / e.path().filename());
}

Bytes load_plain(StateStore& st) {
    auto l = st.load(kPermall);
    REQUIRE(l.ok());
    return Bytes(l->view().begin(), l->view().end());
}

const char* kFile = "tpm2-00.permall";
const char* kJournal = "tpm2-00.permall.journal";

}  // namespace

TEST_CASE("journal codec: header and records round-trip; damage is detected") {
    journal::Header h;
    h.slot_size = 65536;
    h.epoch = 7;
    h.base = sha256(pattern(10, 1));
    Bytes hb = journal::encode_header(h);
    REQUIRE(hb.size() == journal::kHeaderSize);
    auto d = journal::decode_header(hb);
    REQUIRE(d.ok());
    CHECK(d->slot_size == 65536);
    CHECK(d->epoch == 7);
    CHECK(d->base == h.base);
    for (size_t i : {0u, 8u, 13u, 20u, 24u, 30u, 60u}) {
        Bytes bad = hb;
        bad[i] ^= 0x01;
        CHECK_FALSE(journal::decode_header(bad).ok());
    }
    CHECK_FALSE(journal::decode_header(ByteView(hb).first(100)).ok());
    h.base.reset();
    auto none = journal::decode_header(journal::encode_header(h));
    REQUIRE(none.ok());
    CHECK_FALSE(none->base.has_value());

    const Bytes data = pattern(300, 5);
    Bytes rec = journal::encode_record(7, 42, data);
    rec.resize(h.slot_size, 0);
    auto r = journal::decode_record(rec, 7);
    REQUIRE(r.has_value());
    CHECK(r->seq == 42);
    CHECK(Bytes(r->data.begin(), r->data.end()) == data);
    CHECK_FALSE(journal::decode_record(rec, 8).has_value());  // another epoch
    for (size_t i : {0u, 9u, 17u, 25u, 30u, 60u, 359u}) {      // torn or edited
        Bytes bad = rec;
        bad[i] ^= 0x80;
        CHECK_FALSE(journal::decode_record(bad, 7).has_value());
    }
    Bytes longer = journal::encode_record(7, 42, data);  // length past the slot
    CHECK_FALSE(journal::decode_record(ByteView(longer).first(200), 7).has_value());
}

TEST_CASE("journal codec: the newest intact record of the epoch wins") {
    journal::Header h{65536, 3, std::nullopt};
    Bytes file = journal::encode_header(h);
    file.resize(journal::file_size(h), 0);
    auto put = [&](uint64_t seq, const Bytes& data, uint64_t epoch = 3) {
        Bytes rec = journal::encode_record(epoch, seq, data);
        std::copy(rec.begin(), rec.end(), file.begin() + static_cast<long>(journal::slot_offset(h, seq)));
    };
    put(4, pattern(50, 4));
    put(5, pattern(60, 5));
    auto v = journal::parse(file);
    REQUIRE(v.ok());
    REQUIRE(v->latest.has_value());
    CHECK(v->latest->seq == 5);
    // Seq 6 torn over seq 4's slot: 5 stays the newest.
    put(6, pattern(70, 6));
    file[journal::slot_offset(h, 6) + 100] ^= 1;
    v = journal::parse(file);
    REQUIRE(v->latest.has_value());
    CHECK(v->latest->seq == 5);
    // A record of an older epoch does not count.
    put(8, pattern(70, 8), 2);
    v = journal::parse(file);
    CHECK(v->latest->seq == 5);
    // A record in the slot its seq does not name was not written by us.
    Bytes rec = journal::encode_record(3, 9, pattern(10, 9));
    std::copy(rec.begin(), rec.end(), file.begin() + static_cast<long>(journal::kSlotsOffset));
    v = journal::parse(file);
    CHECK(v->latest->seq == 5);
}

TEST_CASE("dir store journal: one write per NV change, the file brought up to date at checkpoints") {
    TempDir d;
    auto st = make_dir_store(d.path.string(), true, 0600, std::nullopt);
    REQUIRE(st->lock().ok());
    REQUIRE(st->store(kPermall, pattern(100, 1)).ok());  // no state yet: the file directly
    const Bytes file_a = slurp(d.path / kFile);
    CHECK_FALSE(fs::exists(d.path / kJournal));
    CHECK_FALSE(st->needs_checkpoint());
    REQUIRE(st->store(kPermall, pattern(100, 2)).ok());  // a journal holding it
    CHECK(fs::exists(d.path / kJournal));
    CHECK(st->needs_checkpoint());
    CHECK(slurp(d.path / kFile) == file_a);        // not copied yet
    CHECK(load_plain(*st) == pattern(100, 2));     // but that is the state
    auto list = st->list();
    REQUIRE(list.ok());
    REQUIRE(!list->empty());
    CHECK(list->front().size == file_a.size());
    REQUIRE(st->checkpoint().ok());
    CHECK_FALSE(st->needs_checkpoint());
    auto plain = decode_state_file(slurp(d.path / kFile), nullptr);
    REQUIRE(plain.ok());
    CHECK(Bytes(plain->view().begin(), plain->view().end()) == pattern(100, 2));
    // unlock copies the journal too (what swtpm then reads).
    REQUIRE(st->store(kPermall, pattern(100, 3)).ok());
    st->unlock();
    plain = decode_state_file(slurp(d.path / kFile), nullptr);
    REQUIRE(plain.ok());
    CHECK(Bytes(plain->view().begin(), plain->view().end()) == pattern(100, 3));
}

TEST_CASE("dir store journal: after a crash the newest acknowledged state opens") {
    TempDir d, crashed, cut;
    auto st = make_dir_store(d.path.string(), true, 0600, std::nullopt);
    REQUIRE(st->lock().ok());
    REQUIRE(st->store(kPermall, pattern(200, 1)).ok());
    const Bytes base_file = slurp(d.path / kFile);
    for (uint8_t i = 2; i <= 5; ++i) REQUIRE(st->store(kPermall, pattern(200, i)).ok());
    copy_dir(d.path, crashed.path);  // kill -9 now
    {
        // Read without the lock (a tool beside no bridge) and with it.
        auto ro = make_dir_store(crashed.path.string(), true, 0600, std::nullopt);
        CHECK(load_plain(*ro) == pattern(200, 5));
        REQUIRE(ro->lock().ok());
        CHECK(load_plain(*ro) == pattern(200, 5));
        CHECK(ro->needs_checkpoint());
        REQUIRE(ro->store(kPermall, pattern(200, 6)).ok());  // writes go on after recovery
    }
    {
        auto again = make_dir_store(crashed.path.string(), true, 0600, std::nullopt);
        REQUIRE(again->lock().ok());
        CHECK(load_plain(*again) == pattern(200, 6));
    }
    // Power cut: the state file fell back to the one the journal's epoch began with.
    copy_dir(d.path, cut.path);
    spit(cut.path / kFile, base_file);
    auto pc = make_dir_store(cut.path.string(), true, 0600, std::nullopt);
    REQUIRE(pc->lock().ok());
    CHECK(load_plain(*pc) == pattern(200, 5));
}

TEST_CASE("dir store journal: a crash's record is copied into the file only once the TPM ran on it") {
    TempDir d, crashed;
    auto key = Key{SecureBytes(ByteView(Bytes(16, 0x5a)))};
    auto wrong = Key{SecureBytes(ByteView(Bytes(16, 0xa5)))};
    auto st = make_dir_store(d.path.string(), true, 0600, key);
    REQUIRE(st->lock().ok());
    REQUIRE(st->store(kPermall, pattern(200, 1)).ok());
    REQUIRE(st->store(kPermall, pattern(200, 2)).ok());
    copy_dir(d.path, crashed.path);  // kill -9 now
    const Bytes file = slurp(crashed.path / kFile), journal = slurp(crashed.path / kJournal);
    {
        // A start refused for a wrong key; a lock only to list the states.
        auto refused = make_dir_store(crashed.path.string(), true, 0600, wrong);
        REQUIRE(refused->lock().ok());
        CHECK_FALSE(refused->load(kPermall).ok());
        CHECK_FALSE(refused->needs_checkpoint());
        REQUIRE(refused->checkpoint().ok());
        refused->unlock();
        auto listed = make_dir_store(crashed.path.string(), true, 0600, key);
        REQUIRE(listed->lock().ok());
        REQUIRE(listed->list().ok());
    }
    CHECK(slurp(crashed.path / kFile) == file);
    CHECK(slurp(crashed.path / kJournal) == journal);
    {
        auto ok = make_dir_store(crashed.path.string(), true, 0600, key);
        REQUIRE(ok->lock().ok());
        CHECK(load_plain(*ok) == pattern(200, 2));
        CHECK(ok->needs_checkpoint());
    }  // the TPM ran on it: the file is brought up to date
    auto plain = decode_state_file(slurp(crashed.path / kFile), &key);
    REQUIRE(plain.ok());
    CHECK(Bytes(plain->view().begin(), plain->view().end()) == pattern(200, 2));
}

TEST_CASE("dir store journal: a torn newest record falls back to the one before") {
    TempDir d, crashed;
    auto st = make_dir_store(d.path.string(), true, 0600, std::nullopt);
    REQUIRE(st->lock().ok());
    REQUIRE(st->store(kPermall, pattern(300, 1)).ok());
    REQUIRE(st->store(kPermall, pattern(300, 2)).ok());  // seq 1
    REQUIRE(st->store(kPermall, pattern(300, 3)).ok());  // seq 2: the one torn below
    copy_dir(d.path, crashed.path);
    Bytes j = slurp(crashed.path / kJournal);
    auto h = journal::decode_header(j);
    REQUIRE(h.ok());
    j[journal::slot_offset(*h, 2) + journal::kRecordHeader + 10] ^= 0xff;
    spit(crashed.path / kJournal, j);
    auto c = make_dir_store(crashed.path.string(), true, 0600, std::nullopt);
    REQUIRE(c->lock().ok());
    CHECK(load_plain(*c) == pattern(300, 2));
}

TEST_CASE("dir store journal: a state file another program wrote after a crash wins") {
    TempDir d, crashed;
    auto st = make_dir_store(d.path.string(), true, 0600, std::nullopt);
    REQUIRE(st->lock().ok());
    REQUIRE(st->store(kPermall, pattern(100, 1)).ok());
    REQUIRE(st->store(kPermall, pattern(100, 2)).ok());
    copy_dir(d.path, crashed.path);
    // Debian's swtpm (or swtpm_setup --overwrite) writes the file meanwhile.
    auto foreign = encode_state_file(pattern(100, 9), nullptr);
    REQUIRE(foreign.ok());
    spit(crashed.path / kFile, *foreign);
    {
        auto c = make_dir_store(crashed.path.string(), true, 0600, std::nullopt);
        CHECK(load_plain(*c) == pattern(100, 9));  // without the lock too
        REQUIRE(c->lock().ok());
        CHECK(load_plain(*c) == pattern(100, 9));
        REQUIRE(c->store(kPermall, pattern(100, 10)).ok());
    }
    auto c = make_dir_store(crashed.path.string(), true, 0600, std::nullopt);
    REQUIRE(c->lock().ok());
    CHECK(load_plain(*c) == pattern(100, 10));
}

TEST_CASE("dir store journal: a damaged journal header leaves the file in charge") {
    TempDir d;
    {
        auto st = make_dir_store(d.path.string(), true, 0600, std::nullopt);
        REQUIRE(st->lock().ok());
        REQUIRE(st->store(kPermall, pattern(100, 1)).ok());
        REQUIRE(st->store(kPermall, pattern(100, 2)).ok());
    }  // checkpointed on the way out
    Bytes j = slurp(d.path / kJournal);
    j[3] ^= 0xff;
    spit(d.path / kJournal, j);
    auto st = make_dir_store(d.path.string(), true, 0600, std::nullopt);
    REQUIRE(st->lock().ok());
    CHECK(load_plain(*st) == pattern(100, 2));
    REQUIRE(st->store(kPermall, pattern(100, 3)).ok());  // rebuilt
    CHECK(load_plain(*st) == pattern(100, 3));
}

TEST_CASE("dir store journal: a deleted state does not come back; an encrypted state stays encrypted in it") {
    TempDir d, crashed;
    auto key = Key{SecureBytes(ByteView(Bytes(16, 0x5a)))};
    auto st = make_dir_store(d.path.string(), true, 0600, key);
    REQUIRE(st->lock().ok());
    REQUIRE(st->store(kPermall, pattern(4000, 1)).ok());
    REQUIRE(st->store(kPermall, pattern(4000, 2)).ok());
    const Bytes j = slurp(d.path / kJournal);
    const Bytes plain2 = pattern(4000, 2);
    const Bytes needle(plain2.begin(), plain2.begin() + 64);
    CHECK(std::search(j.begin(), j.end(), needle.begin(), needle.end()) == j.end());
    REQUIRE(st->remove(kPermall, true).ok());
    copy_dir(d.path, crashed.path);
    auto c = make_dir_store(crashed.path.string(), true, 0600, key);
    REQUIRE(c->lock().ok());
    CHECK(c->load(kPermall).code() == rc::kRetry);
}

TEST_CASE("dir store journal: after a deleted state is made anew, a crash keeps its newest writes") {
    TempDir d, crashed;
    auto st = make_dir_store(d.path.string(), true, 0600, std::nullopt);
    REQUIRE(st->lock().ok());
    REQUIRE(st->store(kPermall, pattern(500, 1)).ok());
    REQUIRE(st->store(kPermall, pattern(500, 2)).ok());
    REQUIRE(st->remove(kPermall, true).ok());
    // A new TPM in the same directory, still served by this store.
    REQUIRE(st->store(kPermall, pattern(500, 3)).ok());
    REQUIRE(st->store(kPermall, pattern(500, 4)).ok());
    REQUIRE(st->store(kPermall, pattern(500, 5)).ok());
    copy_dir(d.path, crashed.path);  // kill -9 now
    auto c = make_dir_store(crashed.path.string(), true, 0600, std::nullopt);
    REQUIRE(c->lock().ok());
    CHECK(load_plain(*c) == pattern(500, 5));
}

TEST_CASE("dir store journal: a state that outgrows the slots is written directly, then journaled again") {
    TempDir d, crashed;
    auto st = make_dir_store(d.path.string(), true, 0600, std::nullopt);
    REQUIRE(st->lock().ok());
    REQUIRE(st->store(kPermall, pattern(100, 1)).ok());
    REQUIRE(st->store(kPermall, pattern(100, 2)).ok());
    REQUIRE(st->store(kPermall, pattern(200 * 1024, 3)).ok());
    CHECK(load_plain(*st) == pattern(200 * 1024, 3));
    REQUIRE(st->store(kPermall, pattern(200 * 1024, 4)).ok());
    CHECK(st->needs_checkpoint());
    copy_dir(d.path, crashed.path);
    auto c = make_dir_store(crashed.path.string(), true, 0600, std::nullopt);
    REQUIRE(c->lock().ok());
    CHECK(load_plain(*c) == pattern(200 * 1024, 4));
}
