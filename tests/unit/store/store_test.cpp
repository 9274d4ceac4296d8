// Store: blob/TLV codec, swtpm's AES-CBC+HMAC, key options, state files and
// migration blobs, the directory backend with its lock.
#include <catch2/catch.hpp>
#include <iterator>
#include <csignal>
#include <sys/resource.h>

#include "temp_dir.hpp"
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "store/blob.hpp"
#include "store/cipher.hpp"
#include "store/key.hpp"
#include "store/state_file.hpp"
#include "store/state_store.hpp"

using namespace vtpm;
using namespace vtpm::store;
namespace fs = std::filesystem;

namespace {

Key key_of(size_t n, uint8_t fill) { return Key{SecureBytes(ByteView(Bytes(n, fill)))}; }

Bytes pattern(size_t n) {
    Bytes b(n);
    for (size_t i = 0; i < n; ++i) b[i] = static_cast<uint8_t>(i * 7 + 3);
    return b;
}

Bytes slurp(const fs::path& p) {
    std::ifstream f(p, std::ios::binary);
    return Bytes(std::istreambuf_iterator<char>(f), {});
}

}  // namespace

TEST_CASE("blob header: every validation rule") {
    Bytes payload{1, 2, 3};
    Bytes b = make_blob(0x0004, payload);
    REQUIRE(b.size() == 13);
    CHECK(to_hex(ByteView(b).first(10)) == "0201000a00040000000d");
    auto h = parse_header(b);
    REQUIRE(h.ok());
    CHECK(h->flags == 4);

    CHECK(parse_header(ByteView(b).first(9)).code() == rc::kBadParameter);  // short
    Bytes trunc(b.begin(), b.end() - 1);
    CHECK(parse_header(trunc).code() == rc::kBadParameter);  // totlen mismatch
    Bytes newer = b;
    newer[1] = 3;
    CHECK(parse_header(newer).code() == rc::kBadVersion);
    Bytes bad_hdr = b;
    bad_hdr[3] = 12;
    CHECK(parse_header(bad_hdr).code() == rc::kBadDataSize);
}

TEST_CASE("TLV: lookup by tag, stop at a record running past the end") {
    Bytes s;
    append_tlv(s, 7, Bytes{9});
    append_tlv(s, 1, Bytes{1, 2});
    auto t = find_tlv(s, 1);
    REQUIRE(t);
    CHECK(t->size() == 2);
    CHECK_FALSE(find_tlv(s, 3));
    Bytes broken = s;
    broken[7 + 2] = 0xff;  // top byte of the second record's length
    CHECK_FALSE(find_tlv(broken, 1));
    CHECK(find_tlv(broken, 7));
    CHECK_FALSE(find_tlv(ByteView(s).first(5), 7));
}

TEST_CASE("cipher: round trip for 16 and 32-byte keys and lengths 0..70") {
    for (size_t kl : {16u, 32u}) {
        Key k = key_of(kl, 0x11);
        for (size_t n = 0; n <= 70; ++n) {
            Bytes p = pattern(n);
            auto t = encrypt_to_tlvs(k, p, kTagEncryptedData, kTagIvEncryptedData);
            REQUIRE(t.ok());
            auto ct = find_tlv(*t, kTagEncryptedData);
            REQUIRE(ct);
            CHECK(ct->size() == (n / kl + 1) * kl);  // swtpm pads to the key length, always
            CHECK(find_tlv(*t, kTagIvEncryptedData)->size() == kl);
            CHECK(find_tlv(*t, kTagHmac)->size() == 32);
            auto d = decrypt_from_tlvs(k, *t, kTagEncryptedData, kTagIvEncryptedData);
            REQUIRE(d.ok());
            CHECK(Bytes(d->data(), d->data() + d->size()) == p);
        }
    }
}

TEST_CASE("cipher: tampering and wrong keys are detected") {
    Key k = key_of(32, 0x22);
    auto t = encrypt_to_tlvs(k, pattern(100), kTagEncryptedData, kTagIvEncryptedData);
    REQUIRE(t.ok());
    for (size_t pos : {size_t{6}, size_t{50}, t->size() - 1}) {  // ciphertext, hmac region, iv
        Bytes x = *t;
        x[pos] ^= 1;
        CHECK(decrypt_from_tlvs(k, x, kTagEncryptedData, kTagIvEncryptedData).code() == rc::kDecryptError);
    }
    CHECK(decrypt_from_tlvs(key_of(32, 0x23), *t, kTagEncryptedData, kTagIvEncryptedData).code() ==
          rc::kDecryptError);
    CHECK(decrypt_from_tlvs(key_of(7, 1), *t, kTagEncryptedData, kTagIvEncryptedData).code() == rc::kBadKeyProperty);
    CHECK_FALSE(decrypt_from_tlvs(k, Bytes{}, kTagEncryptedData, kTagIvEncryptedData).ok());
}

TEST_CASE("keys: hex parsing") {
    std::string hex32 = "000102030405060708090a0b0c0d0e0f";
    auto k = parse_hex_key(hex32, 16);
    REQUIRE(k.ok());
    CHECK(k->bytes[15] == 0x0f);
    CHECK(parse_hex_key("0x" + hex32 + " \n", 16).ok());
    CHECK(parse_hex_key(hex32, 32).code() == rc::kBadKeyProperty);
    CHECK(parse_hex_key(hex32.substr(2), 16).code() == rc::kBadKeyProperty);
    CHECK(parse_hex_key(hex32 + "zz", 16).code() == rc::kBadKeyProperty);
    // swtpm 0.7.1 reads the key up to the first white space and ignores the rest.
    auto commented = parse_hex_key(hex32 + " 00 # the VM's key\n", 16);
    REQUIRE(commented.ok());
    CHECK(commented->bytes[15] == 0x0f);
    CHECK(parse_hex_key(hex32 + "\tzz", 16).ok());
}

TEST_CASE("keys: PBKDF2-SHA512 and SHA-512 derivation match independent vectors") {
    const std::string pw = "secretpass";
    ByteView v(reinterpret_cast<const uint8_t*>(pw.data()), pw.size());
    auto k = derive_key_pbkdf2(v, 32);
    REQUIRE(k.ok());
    CHECK(to_hex(k->bytes) == "cea065ac0118e9e1774cc97f208907f1f5392b0f8e0eb680a416420ac2546b66");
    auto s = derive_key_sha512(v, 32);
    REQUIRE(s.ok());
    CHECK(to_hex(s->bytes) == "4aa7d0542fa97281ca6c24eb9d0df4b99e31fd2397804d9eb2506caa6d672245");
}

TEST_CASE("keys: option values from files and pipes") {
    TempDir d;
    auto kf = d.path / "key";
    std::ofstream(kf) << "0x" << std::string(64, 'a') << "\n";
    auto k = load_key_option("file=" + kf.string() + ",mode=aes-256-cbc");
    REQUIRE(k.ok());
    CHECK(k->bytes.size() == 32);
    CHECK(k->bytes[0] == 0xaa);
    CHECK(load_key_option("file=" + kf.string()).code() == rc::kBadKeyProperty);  // 128-bit mode, 64 digits
    CHECK(load_key_option("file=" + kf.string() + ",mode=aes-512-cbc").code() == rc::kBadMode);
    CHECK_FALSE(load_key_option("file=/nonexistent/key").ok());
    CHECK_FALSE(load_key_option("mode=aes-256-cbc").ok());
    // Both a key and a passphrase: swtpm takes the key (file=, fd=, pwdfile=, pwdfd= in that order).
    auto pf = d.path / "pwd";
    std::ofstream(pf) << "secretpass";
    auto both = load_key_option("pwdfile=" + pf.string() + ",file=" + kf.string() + ",mode=aes-256-cbc,kdf=sha512");
    REQUIRE(both.ok());
    CHECK(both->bytes[0] == 0xaa);
    CHECK(load_key_option("file=" + kf.string() + ",pwdfile=" + pf.string()).code() == rc::kBadKeyProperty);
    // remove: only once the key is loaded (as swtpm), and every file named.
    CHECK_FALSE(load_key_option("file=" + kf.string() + ",remove").ok());
    CHECK(fs::exists(kf));
    auto kf2 = d.path / "key2";
    fs::copy_file(kf, kf2);
    REQUIRE(load_key_option("file=" + kf2.string() + ",pwdfile=" + pf.string() + ",mode=aes-256-cbc,remove").ok());
    CHECK_FALSE(fs::exists(kf2));
    CHECK_FALSE(fs::exists(pf));

    int p[2];
    REQUIRE(::pipe(p) == 0);
    REQUIRE(::write(p[1], "secretpass", 10) == 10);
    ::close(p[1]);
    auto pk = load_key_option("pwdfd=" + std::to_string(p[0]) + ",mode=aes-256-cbc");
    REQUIRE(pk.ok());
    CHECK(to_hex(pk->bytes) == "cea065ac0118e9e1774cc97f208907f1f5392b0f8e0eb680a416420ac2546b66");
    CHECK(::fcntl(p[0], F_GETFD) < 0);  // the fd was consumed and closed

    auto bf = d.path / "bin";
    std::ofstream(bf, std::ios::binary) << std::string(16, '\x01');
    auto bk = load_key_option("file=" + bf.string() + ",format=binary,remove");
    REQUIRE(bk.ok());
    CHECK(bk->bytes.size() == 16);
    CHECK_FALSE(fs::exists(bf));  // remove
}

TEST_CASE("state files: plain and encrypted, and the wrong key situations") {
    Bytes plain = pattern(1299);
    auto f = encode_state_file(plain, nullptr);
    REQUIRE(f.ok());
    CHECK(to_hex(ByteView(*f).first(16)) == "0201000a0000000005230001" "00000513");
    auto back = decode_state_file(*f, nullptr);
    REQUIRE(back.ok());
    CHECK(Bytes(back->data(), back->data() + back->size()) == plain);

    Key k = key_of(32, 0x5a);
    auto e = encode_state_file(plain, &k);
    REQUIRE(e.ok());
    CHECK(load_be16(e->data() + 4) == 0x0009);
    CHECK(e->size() == 10 + 6 + 1312 + 6 + 32 + 6 + 32);  // the sizes swtpm writes for 1299 bytes
    auto de = decode_state_file(*e, &k);
    REQUIRE(de.ok());
    CHECK(de->size() == plain.size());
    CHECK_FALSE(decode_state_file(*e, nullptr).ok());  // encrypted, no key
    CHECK_FALSE(decode_state_file(*f, &k).ok());       // plain, key configured
    Key k16 = key_of(16, 0x5a);
    CHECK(decode_state_file(*e, &k16).code() == rc::kBadKeyProperty);
    // No valid header: read as a legacy version-1 file (whole file is the payload).
    Bytes legacy = pattern(40);
    auto l = decode_state_file(legacy, nullptr);
    REQUIRE(l.ok());
    CHECK(l->size() == 40);
    // A key we chose (state_key = sealed) never wrote one: refused before any
    // decryption is tried, whatever the bytes.
    Key strict = key_of(32, 0x5a);
    strict.authenticated_only = true;
    auto refused = decode_state_file(legacy, &strict);
    REQUIRE_FALSE(refused.ok());
    CHECK(refused.error().message.find("legacy file, encrypted without a MAC") != std::string::npos);
    CHECK(decode_state_file(*e, &strict).ok());       // the v2 format with its MAC is fine
    CHECK_FALSE(decode_state_file(*f, &strict).ok());  // plaintext still refused
    Key copied = strict;
    CHECK(copied.authenticated_only);
}

TEST_CASE("migration blobs: exact unencrypted layout") {
    Bytes plain{0xab, 0xcd};
    auto b = encode_migration_blob(plain, nullptr, nullptr, true);
    REQUIRE(b.ok());
    CHECK(b->state_flags == 0);
    CHECK(to_hex(b->bytes) == "0201000a000400000018" "0004" "00000008" "0001" "00000002" "abcd");
}

TEST_CASE("migration blobs: every key combination round-trips") {
    Bytes plain = pattern(500);
    Key sk = key_of(32, 1), mk = key_of(16, 2);
    for (const Key* s : {static_cast<const Key*>(nullptr), static_cast<const Key*>(&sk)}) {
        for (const Key* m : {static_cast<const Key*>(nullptr), static_cast<const Key*>(&mk)}) {
            for (bool decrypted : {false, true}) {
                auto b = encode_migration_blob(plain, s, m, decrypted);
                REQUIRE(b.ok());
                uint16_t flags = load_be16(b->bytes.data() + 4);
                CHECK((flags & kFlagMigrationData) != 0);
                CHECK(((flags & kFlagMigrationEncrypted) != 0) == (m != nullptr));
                const bool state_enc = s && !decrypted;
                CHECK(((flags & kFlagEncrypted) != 0) == state_enc);
                CHECK(b->state_flags == (state_enc ? kStateFlagEncrypted : 0u));
                auto d = decode_migration_blob(b->bytes, b->state_flags, s, m);
                REQUIRE(d.ok());
                CHECK(Bytes(d->data(), d->data() + d->size()) == plain);
                if (m) CHECK(decode_migration_blob(b->bytes, 0, s, nullptr).code() == rc::kKeyNotFound);
                if (state_enc) CHECK(decode_migration_blob(b->bytes, 0, nullptr, m).code() == rc::kKeyNotFound);
            }
        }
    }
    // An unencrypted blob is accepted even when a migration key is configured.
    auto b = encode_migration_blob(plain, nullptr, nullptr, true);
    CHECK(decode_migration_blob(b->bytes, 0, nullptr, &mk).ok());
    // Request flag ENCRYPTED on a plain blob means "decrypt with the state key": fails cleanly.
    CHECK_FALSE(decode_migration_blob(b->bytes, kStateFlagEncrypted, &sk, nullptr).ok());
}

TEST_CASE("dir store: atomic store, load, remove, mode, list") {
    TempDir d;
    auto st = make_dir_store(d.path.string(), true, 0600, std::nullopt);
    CHECK(st->load(kPermall).code() == rc::kRetry);
    auto unlocked = st->store(kPermall, pattern(100));
    CHECK(unlocked.code() == rc::kFail);
    CHECK(unlocked.error().message.find("lock") != std::string::npos);
    CHECK_FALSE(fs::exists(d.path / "tpm2-00.permall"));
    REQUIRE(st->lock().ok());
    REQUIRE(st->store(kPermall, pattern(100)).ok());
    auto p = d.path / "tpm2-00.permall";
    REQUIRE(fs::exists(p));
    CHECK((fs::status(p).permissions() & fs::perms::all) == (fs::perms::owner_read | fs::perms::owner_write));
    CHECK_FALSE(fs::exists(d.path / "TMP2-00.permall"));
    auto l = st->load(kPermall);
    REQUIRE(l.ok());
    CHECK(l->size() == 100);
    ::chmod(p.c_str(), 0644);
    REQUIRE(st->load(kPermall).ok());
    CHECK((fs::status(p).permissions() & fs::perms::all) == (fs::perms::owner_read | fs::perms::owner_write));
    REQUIRE(st->store(kVolatile, pattern(10)).ok());
    auto list = st->list();
    REQUIRE(list.ok());
    REQUIRE(list->size() == 2);
    CHECK((*list)[0].name == "permall");
    CHECK((*list)[0].size == 10 + 6 + 100);
    CHECK(format_print_states(*list) ==
          "{ \"type\": \"swtpm\", \"states\": [ {\"name\": \"permall\", \"size\": 116}, "
          "{\"name\": \"volatilestate\", \"size\": 26} ] }");
    CHECK(format_print_states({}) == "{ \"type\": \"swtpm\", \"states\": [] }");
    REQUIRE(st->remove(kVolatile, true).ok());
    CHECK(st->remove(kVolatile, false).ok());
    CHECK_FALSE(st->remove(kVolatile, true).ok());
    st->unlock();
    auto tpm12 = make_dir_store(d.path.string(), false, 0640, std::nullopt);
    REQUIRE(tpm12->lock().ok());
    REQUIRE(tpm12->store(kPermall, pattern(5)).ok());
    CHECK(fs::exists(d.path / "tpm-00.permall"));
}

TEST_CASE("dir store: a write that fails half-way leaves the old file intact") {
    // Inject the failure the disk would give: a file-size limit makes the
    // write of the new state fail after its first bytes (EFBIG).
    TempDir d;
    auto st = make_dir_store(d.path.string(), true, 0600, std::nullopt);
    REQUIRE(st->lock().ok());
    REQUIRE(st->store(kPermall, pattern(100)).ok());
    const auto p = d.path / "tpm2-00.permall";
    std::ifstream f0(p, std::ios::binary);
    const Bytes before((std::istreambuf_iterator<char>(f0)), std::istreambuf_iterator<char>());
    REQUIRE(before.size() == 116);

    struct rlimit old{};
    REQUIRE(::getrlimit(RLIMIT_FSIZE, &old) == 0);
    auto old_handler = std::signal(SIGXFSZ, SIG_IGN);
    struct rlimit small = old;
    small.rlim_cur = 4096;
    REQUIRE(::setrlimit(RLIMIT_FSIZE, &small) == 0);
    auto r = st->store(kPermall, pattern(64 * 1024));
    ::setrlimit(RLIMIT_FSIZE, &old);
    std::signal(SIGXFSZ, old_handler);

    REQUIRE_FALSE(r.ok());
    CHECK_FALSE(r.error().message.empty());
    std::ifstream f1(p, std::ios::binary);
    const Bytes after((std::istreambuf_iterator<char>(f1)), std::istreambuf_iterator<char>());
    CHECK(after == before);  // byte for byte the old state
    auto l = st->load(kPermall);
    REQUIRE(l.ok());
    CHECK(Bytes(l->view().begin(), l->view().end()) == pattern(100));
    // And no half-written temporary file is left behind.
    size_t files = 0;
    for (const auto& e : fs::directory_iterator(d.path))
        if (e.path().filename().string().find("permall") != std::string::npos &&
            e.path().extension() != ".journal")
            ++files;
    CHECK(files == 1);
}

TEST_CASE("dir store: a file planted at swtpm's temp name is neither followed nor in the way") {
    TempDir d;
    const auto victim = d.path / "victim";
    { std::ofstream(victim) << "keep me"; }
    fs::create_symlink(victim, d.path / "TMP2-00.permall");
    auto st = make_dir_store(d.path.string(), true, 0600, std::nullopt);
    REQUIRE(st->lock().ok());
    REQUIRE(st->store(kPermall, pattern(100)).ok());  // a fresh, exclusively created temp file
    std::ifstream v(victim);
    std::string text((std::istreambuf_iterator<char>(v)), std::istreambuf_iterator<char>());
    CHECK(text == "keep me");
    CHECK(fs::is_symlink(d.path / "TMP2-00.permall"));
    auto l = st->load(kPermall);
    REQUIRE(l.ok());
    CHECK(l->size() == 100);
}

TEST_CASE("dir store: a corrupt file is reported and left alone") {
    TempDir d;
    auto st = make_dir_store(d.path.string(), true, 0600, key_of(16, 9));
    REQUIRE(st->lock().ok());
    REQUIRE(st->store(kPermall, pattern(64)).ok());
    auto p = d.path / "tpm2-00.permall";
    Bytes raw = slurp(p);
    raw[30] ^= 0x80;
    std::ofstream(p, std::ios::binary).write(reinterpret_cast<const char*>(raw.data()), static_cast<long>(raw.size()));
    auto l = st->load(kPermall);
    CHECK(l.code() == rc::kDecryptError);
    CHECK(l.error().message.find("tpm2-00.permall") != std::string::npos);
    CHECK(slurp(p) == raw);
}

TEST_CASE("dir store: the lock excludes another process") {
    TempDir d;
    auto st = make_dir_store(d.path.string(), true, 0600, std::nullopt);
    REQUIRE(st->lock().ok());
    CHECK(st->locked());
    CHECK(st->lock().ok());  // idempotent
    pid_t pid = ::fork();
    if (pid == 0) {
        auto other = make_dir_store(d.path.string(), true, 0600, std::nullopt);
        auto r = other->lock();
        ::_exit(!r.ok() && r.code() == rc::kFail && r.error().message.find("locked") != std::string::npos ? 0 : 1);
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
    st->unlock();
    CHECK_FALSE(st->locked());
    pid = ::fork();
    if (pid == 0) {
        auto other = make_dir_store(d.path.string(), true, 0600, std::nullopt);
        ::_exit(other->lock().ok() ? 0 : 1);
    }
    ::waitpid(pid, &status, 0);
    CHECK(WEXITSTATUS(status) == 0);
}

TEST_CASE("open_store: URIs") {
    TempDir d;
    CHECK(open_store("dir://" + d.path.string(), true, 0600, std::nullopt).ok());
    CHECK_FALSE(open_store("dir:///nonexistent/dir", true, 0600, std::nullopt).ok());
    CHECK(open_store("file://" + (d.path / "lin").string(), true, 0600, std::nullopt).ok());
    CHECK_FALSE(open_store("file://", true, 0600, std::nullopt).ok());
    CHECK_FALSE(open_store("nfs://x", true, 0600, std::nullopt).ok());
}

TEST_CASE("linear store: a crafted image is refused before any length in it is used") {
    TempDir d;
    auto path = d.path / "tpm.state";
    {
        auto st = make_linear_store(path.string(), 0600, std::nullopt);
        REQUIRE(st->lock().ok());
        REQUIRE(st->store(kPermall, pattern(100)).ok());  // 116 bytes in a 128-byte section
        REQUIRE(st->store(kVolatile, pattern(10)).ok());
    }
    const Bytes good = slurp(path);
    auto put = [](Bytes& img, size_t off, uint32_t v) {
        for (int i = 0; i < 4; ++i) img[off + static_cast<size_t>(i)] = static_cast<uint8_t>(v >> (8 * i));
    };
    struct Case {
        const char* what;
        size_t field;
        uint32_t value;
        const char* message;
    } cases[] = {
        // A section that claims more room than the file has: the next NV
        // write of a blob that fits the claim would land past the image.
        {"section past the end", 20, 1u << 20, "lies outside the file"},
        {"offset in the header", 12, 100, "starts inside the header"},
        {"data longer than its section", 16, 129, "holds more data than its section"},
        {"volatile overlapping permall", 24, 192 + 64, "overlaps slot 0"},
    };
    for (const auto& c : cases) {
        INFO(c.what);
        Bytes bad = good;
        put(bad, c.field, c.value);
        {
            std::ofstream f(path, std::ios::binary | std::ios::trunc);
            f.write(reinterpret_cast<const char*>(bad.data()), static_cast<std::streamsize>(bad.size()));
        }
        auto st = make_linear_store(path.string(), 0600, std::nullopt);
        auto l = st->lock();
        REQUIRE_FALSE(l.ok());
        CHECK(l.error().message.find(c.message) != std::string::npos);
        CHECK_FALSE(st->store(kPermall, pattern(1000)).ok());  // refused: the lock was never taken
        CHECK(slurp(path) == bad);                            // and the file is as it was
    }
}

TEST_CASE("linear store: swtpm's layout, growth, removal and compaction") {
    TempDir d;
    auto path = d.path / "tpm.state";
    auto st = make_linear_store(path.string(), 0600, std::nullopt);
    CHECK(st->load(kPermall).code() == rc::kRetry);
    CHECK_FALSE(st->store(kPermall, pattern(10)).ok());  // no lock
    REQUIRE(st->lock().ok());
    REQUIRE(st->store(kPermall, pattern(100)).ok());   // file 116 bytes -> section 128
    REQUIRE(st->store(kVolatile, pattern(300)).ok());  // 316 -> 512
    Bytes img = slurp(path);
    CHECK(std::string(img.begin(), img.begin() + 8) == "nilmptws");  // "swtpmlin" little-endian
    CHECK(img[10] == 192);
    auto le = [&](size_t off) {
        return uint32_t{img[off]} | uint32_t{img[off + 1]} << 8 | uint32_t{img[off + 2]} << 16;
    };
    CHECK(le(12) == 192);        // permall offset
    CHECK(le(16) == 116);        // data length
    CHECK(le(20) == 128);        // section
    CHECK(le(24) == 192 + 128);  // volatile after it
    CHECK(img.size() == 192 + 128 + 512);
    REQUIRE(st->store(kPermall, pattern(200)).ok());  // outgrows its section: moved to the end
    img = slurp(path);
    CHECK(le(24) == 192);        // volatile compacted forward
    CHECK(le(12) == 192 + 512);  // permall re-allocated after it
    auto p = st->load(kPermall);
    REQUIRE(p.ok());
    CHECK(p->size() == 200);
    REQUIRE(st->remove(kVolatile, true).ok());
    img = slurp(path);
    CHECK(le(12) == 192);
    CHECK(st->load(kVolatile).code() == rc::kRetry);
    CHECK(st->load(kPermall)->size() == 200);
    auto list = st->list();
    REQUIRE(list.ok());
    REQUIRE(list->size() == 1);
    CHECK((*list)[0].size == 216);
}
