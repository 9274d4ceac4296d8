#include "snapshot/record.hpp"

#include <cstring>

#include "attest/vaik_cert.hpp"

namespace vtpm::snapshot {

namespace {

constexpr char kMagic[8] = {'V', 'T', 'P', 'M', 'S', 'N', 'A', 'P'};
constexpr char kSignDomain[] = "libvtpm snapshot record v1";  // sizeof includes the NUL separator
constexpr char kQuoteDomain[] = "libvtpm snapshot quote v1";
// Bounds that keep a hostile record from asking for absurd allocations:
// 2^40 pages is 4 PiB of guest RAM.
constexpr uint64_t kMaxPages = uint64_t{1} << 40;
constexpr uint16_t kMaxBanks = 8;
constexpr uint8_t kMaxPcrs = 32;

size_t digest_size(uint16_t alg) {
    switch (alg) {
        case 0x0004: return 20;  // SHA-1
        case 0x000B: return 32;  // SHA-256
        case 0x000C: return 48;  // SHA-384
        case 0x000D: return 64;  // SHA-512
        case 0x0012: return 32;  // SM3-256
        default: return 0;
    }
}

void put_var(Bytes& out, ByteView v) {
    put_be16(out, static_cast<uint16_t>(v.size()));
    out.insert(out.end(), v.begin(), v.end());
}

// Reads fields in order; the first short read names the field.
class Reader {
public:
    explicit Reader(ByteView b) : b_(b) {}
    Result<ByteView> take(size_t n, const char* what) {
        if (b_.size() - pos_ < n)
            return make_error(rc::kBadParameter, std::string("snapshot record truncated in ") + what);
        ByteView v = b_.subspan(pos_, n);
        pos_ += n;
        return v;
    }
    template <class T>
    Result<T> be(const char* what) {
        auto v = take(sizeof(T), what);
        if (!v) return v.error();
        uint64_t x = 0;
        for (uint8_t c : *v) x = (x << 8) | c;
        return static_cast<T>(x);
    }
    Result<Bytes> var(const char* what) {
        auto n = be<uint16_t>(what);
        if (!n) return n.error();
        auto v = take(*n, what);
        if (!v) return v.error();
        return Bytes(v->begin(), v->end());
    }
    template <size_t N>
    Result<void> fixed(std::array<uint8_t, N>& out, const char* what) {
        auto v = take(N, what);
        if (!v) return v.error();
        std::memcpy(out.data(), v->data(), N);
        return {};
    }
    size_t left() const { return b_.size() - pos_; }

private:
    ByteView b_;
    size_t pos_ = 0;
};

Error bad(const std::string& what) { return Error{rc::kBadParameter, "snapshot record: " + what}; }

}  // namespace

Bytes encode_record_body(const SnapshotRecord& r) {
    Bytes out(kMagic, kMagic + sizeof kMagic);
    put_be16(out, kRecordVersion);
    put_be16(out, 0);
    out.insert(out.end(), r.vm_uuid.begin(), r.vm_uuid.end());
    put_be64(out, r.generation);
    put_be64(out, r.created);
    out.push_back(static_cast<uint8_t>(r.source));
    put_be32(out, r.page_size);
    put_be64(out, r.page_count);
    out.insert(out.end(), r.root.begin(), r.root.end());
    put_be32(out, r.block_pages);
    put_be32(out, static_cast<uint32_t>(r.block_roots.size()));
    for (const auto& d : r.block_roots) out.insert(out.end(), d.begin(), d.end());
    out.insert(out.end(), r.permanent_digest.begin(), r.permanent_digest.end());
    out.insert(out.end(), r.volatile_digest.begin(), r.volatile_digest.end());
    put_be16(out, static_cast<uint16_t>(r.banks.size()));
    for (const auto& b : r.banks) {
        put_be16(out, b.hash_alg);
        out.push_back(static_cast<uint8_t>(b.values.size()));
        for (const auto& v : b.values) out.insert(out.end(), v.begin(), v.end());
    }
    put_var(out, r.host_key_name);
    put_var(out, r.vaik_public);
    put_var(out, r.quote_attest);
    put_var(out, r.quote_signature);
    return out;
}

Bytes encode_record(const SnapshotRecord& r) {
    Bytes out = encode_record_body(r);
    put_var(out, r.host_signature);
    return out;
}

Result<SnapshotRecord> parse_record(ByteView bytes) {
    Reader in(bytes);
    SnapshotRecord r;
    auto magic = in.take(sizeof kMagic, "magic");
    if (!magic) return magic.error();
    if (std::memcmp(magic->data(), kMagic, sizeof kMagic) != 0) return bad("not a snapshot record (bad magic)");
    auto version = in.be<uint16_t>("version");
    if (!version) return version.error();
    if (*version != kRecordVersion) return bad("version " + std::to_string(*version) + " is not supported");
    auto flags = in.be<uint16_t>("flags");
    if (!flags) return flags.error();
    if (*flags != 0) return bad("unknown flags " + hex32(*flags));
    if (auto x = in.fixed(r.vm_uuid, "vm_uuid"); !x) return x.error();
    auto gen = in.be<uint64_t>("generation");
    auto created = in.be<uint64_t>("created");
    auto source = in.be<uint8_t>("digest_source");
    auto page_size = in.be<uint32_t>("page_size");
    auto pages = in.be<uint64_t>("page_count");
    if (!gen || !created || !source || !page_size || !pages)
        return (!gen ? gen.error() : !created ? created.error() : !source ? source.error()
                : !page_size ? page_size.error() : pages.error());
    r.generation = *gen;
    r.created = *created;
    if (*source != 1 && *source != 2) return bad("unknown digest source " + std::to_string(*source));
    r.source = static_cast<DigestSource>(*source);
    if (*page_size != 4096) return bad("page size " + std::to_string(*page_size) + " is not 4096");
    r.page_size = *page_size;
    if (*pages > kMaxPages) return bad("page count " + std::to_string(*pages) + " is out of range");
    r.page_count = *pages;
    if (auto x = in.fixed(r.root, "merkle_root"); !x) return x.error();
    auto block_pages = in.be<uint32_t>("block_pages");
    auto n_blocks = in.be<uint32_t>("block count");
    if (!block_pages || !n_blocks) return !block_pages ? block_pages.error() : n_blocks.error();
    r.block_pages = *block_pages;
    // Block roots are optional (0 blocks) but, when present, cover every page.
    if (*n_blocks != 0) {
        if (r.block_pages == 0) return bad("block roots without a block size");
        const uint64_t want = (r.page_count + r.block_pages - 1) / r.block_pages;
        if (*n_blocks != want)
            return bad(std::to_string(*n_blocks) + " block roots for " + std::to_string(r.page_count) +
                       " pages in blocks of " + std::to_string(r.block_pages) + " (expected " + std::to_string(want) +
                       ")");
        if (in.left() / 32 < *n_blocks) return bad("truncated in the block roots");
        r.block_roots.resize(*n_blocks);
        for (auto& d : r.block_roots)
            if (auto x = in.fixed(d, "block roots"); !x) return x.error();
    }
    if (auto x = in.fixed(r.permanent_digest, "permanent digest"); !x) return x.error();
    if (auto x = in.fixed(r.volatile_digest, "volatile digest"); !x) return x.error();
    auto n_banks = in.be<uint16_t>("bank count");
    if (!n_banks) return n_banks.error();
    if (*n_banks == 0 || *n_banks > kMaxBanks) return bad(std::to_string(*n_banks) + " PCR banks");
    for (uint16_t i = 0; i < *n_banks; ++i) {
        PcrBank b;
        auto alg = in.be<uint16_t>("bank hash algorithm");
        auto count = in.be<uint8_t>("PCR count");
        if (!alg || !count) return !alg ? alg.error() : count.error();
        const size_t ds = digest_size(*alg);
        if (ds == 0) return bad("unknown PCR bank algorithm " + hex32(*alg));
        for (const auto& seen : r.banks)
            if (seen.hash_alg == *alg) return bad("PCR bank " + hex32(*alg) + " appears twice");
        if (*count == 0 || *count > kMaxPcrs) return bad(std::to_string(*count) + " PCRs in a bank");
        b.hash_alg = *alg;
        for (uint8_t p = 0; p < *count; ++p) {
            auto v = in.take(ds, "PCR values");
            if (!v) return v.error();
            b.values.emplace_back(v->begin(), v->end());
        }
        r.banks.push_back(std::move(b));
    }
    for (auto [field, name] : {std::pair{&r.host_key_name, "host key name"}, {&r.vaik_public, "vAIK public"},
                               {&r.quote_attest, "quote"}, {&r.quote_signature, "quote signature"},
                               {&r.host_signature, "host signature"}}) {
        auto v = in.var(name);
        if (!v) return v.error();
        *field = std::move(*v);
    }
    if (r.vaik_public.empty() != r.quote_attest.empty() || r.quote_attest.empty() != r.quote_signature.empty())
        return bad("a vAIK quote needs the vAIK public key, the quote and its signature");
    if (in.left() != 0) return bad(std::to_string(in.left()) + " bytes after the end");
    return r;
}

Bytes signed_message(const SnapshotRecord& r) {
    Bytes msg(kSignDomain, kSignDomain + sizeof kSignDomain);
    const Bytes body = encode_record_body(r);
    msg.insert(msg.end(), body.begin(), body.end());
    return msg;
}

Digest quote_qualifying_data(const SnapshotRecord& r) {
    Bytes b;
    put_be64(b, r.generation);
    put_be64(b, r.page_count);
    return sha256({ByteView(reinterpret_cast<const uint8_t*>(kQuoteDomain), sizeof kQuoteDomain), r.vm_uuid, b,
                      r.root});
}

Digest pcr_values_digest(const SnapshotRecord& r) {
    Bytes all;
    for (const auto& b : r.banks)
        for (const auto& v : b.values) all.insert(all.end(), v.begin(), v.end());
    return sha256({all});
}

}  // namespace vtpm::snapshot
