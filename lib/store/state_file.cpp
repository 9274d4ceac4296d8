// State files and migration blobs (state-format.md §2.3, §3).
#include "store/state_file.hpp"

#include "store/blob.hpp"
#include "store/cipher.hpp"

namespace vtpm::store {
namespace {

Result<void> check_key_size(const Key& key, bool flag256, const char* which) {
    if (key.is256() != flag256)
        return make_error(rc::kBadKeyProperty,
                          std::string("the blob was encrypted with a ") + (flag256 ? "256" : "128") + "-bit " + which +
                              " key, the configured one has " + std::to_string(key.bytes.size() * 8) + " bits");
    return {};
}

}  // namespace

Result<Bytes> encode_state_file(ByteView plain, const Key* state_key) {
    if (!state_key) {
        Bytes tlvs;
        append_tlv(tlvs, kTagData, plain);
        return make_blob(0, tlvs);
    }
    auto tlvs = encrypt_to_tlvs(*state_key, plain, kTagEncryptedData, kTagIvEncryptedData);
    if (!tlvs) return tlvs.error();
    return make_blob(static_cast<uint16_t>(kFlagEncrypted | (state_key->is256() ? kFlagEncrypted256 : 0)), *tlvs);
}

namespace {

// After a valid header, swtpm reads the payload by the header's version:
// 1 the bare (legacy) payload, 2 TLV records. Encrypted data of any other
// version is TPM_FAIL (a flipped version byte is refused); swtpm takes plain
// data of another version without complaint, and so do we (as TLVs).
Result<void> check_payload_version(const BlobHeader& h) {
    if (h.version == 1 || h.version == kBlobVersion) return {};
    return make_error(rc::kFail, "blob format version " + std::to_string(h.version) + " is neither 1 nor 2");
}

// A version-1 payload behind a header: plain, or encrypted the legacy way.
Result<SecureBytes> decode_v1_payload(ByteView payload, const Key* key) {
    if (key && key->authenticated_only)
        return make_error(rc::kFail, "a version-1 blob, encrypted without a MAC, is refused with this key");
    if (key) return decrypt_legacy_v1(*key, payload);
    return SecureBytes(payload);
}

}  // namespace

Result<SecureBytes> decode_state_file(ByteView file, const Key* state_key) {
    auto hdr = parse_header(file);
    if (!hdr) {
        // No valid v2 header: a version-1 file is the bare payload.
        if (state_key && state_key->authenticated_only)
            return make_error(rc::kFail, "the state file has no version-2 header: a legacy file, encrypted without a "
                                         "MAC, is refused with this state key");
        if (state_key) return decrypt_legacy_v1(*state_key, file);
        return SecureBytes(file);
    }
    if (state_key)
        if (auto v = check_payload_version(*hdr); !v) return v.error();
    ByteView tlvs = file.subspan(kBlobHeaderSize);
    if (hdr->version == 1) return decode_v1_payload(tlvs, state_key);
    if (state_key) {
        if (!(hdr->flags & kFlagEncrypted))
            return make_error(rc::kFail, "the state file is not encrypted but a state key is configured");
        if (auto k = check_key_size(*state_key, hdr->flags & kFlagEncrypted256, "state"); !k) return k.error();
        return decrypt_from_tlvs(*state_key, tlvs, kTagEncryptedData, kTagIvEncryptedData);
    }
    if (hdr->flags & kFlagEncrypted)
        return make_error(rc::kFail, "the state file is encrypted but no state key (--key) is configured");
    auto data = find_tlv(tlvs, kTagData);
    if (!data) return make_error(rc::kFail, "the state file has no data record");
    return SecureBytes(*data);
}

Result<MigrationBlob> encode_migration_blob(ByteView plain, const Key* state_key, const Key* migration_key,
                                            bool decrypted) {
    MigrationBlob out;
    uint16_t flags = kFlagMigrationData;
    Bytes inner;
    if (state_key && !decrypted) {
        auto t = encrypt_to_tlvs(*state_key, plain, kTagEncryptedData, kTagIvEncryptedData);
        if (!t) return t.error();
        inner = std::move(*t);
        flags |= kFlagEncrypted | (state_key->is256() ? kFlagEncrypted256 : 0);
        out.state_flags = kStateFlagEncrypted;
    } else {
        append_tlv(inner, kTagData, plain);
    }
    Bytes outer;
    if (migration_key) {
        auto t = encrypt_to_tlvs(*migration_key, inner, kTagEncryptedMigrationData, kTagIvEncryptedMigrationData);
        wipe(inner);
        if (!t) return t.error();
        outer = std::move(*t);
        flags |= kFlagMigrationEncrypted | (migration_key->is256() ? kFlagMigration256 : 0);
    } else {
        append_tlv(outer, kTagMigrationData, inner);
        wipe(inner);
    }
    out.bytes = make_blob(flags, outer);
    return out;
}

Result<SecureBytes> decode_migration_blob(ByteView blob, uint32_t request_flags, const Key* state_key,
                                          const Key* migration_key) {
    auto hdr = parse_header(blob);
    if (!hdr) return hdr.error();
    if (hdr->flags & (kFlagMigrationEncrypted | kFlagEncrypted) || (request_flags & kStateFlagEncrypted))
        if (auto v = check_payload_version(*hdr); !v) return v.error();
    if (hdr->version == 1)
        return make_error(rc::kFail, "a version-1 state blob (swtpm before 0.2) cannot be migrated");
    ByteView tlvs = blob.subspan(kBlobHeaderSize);
    // A header without payload is an empty blob to swtpm: no state of that type.
    if (tlvs.empty()) return SecureBytes{};
    SecureBytes inner_owned;
    ByteView inner;
    if (hdr->flags & kFlagMigrationEncrypted) {
        if (!migration_key)
            return make_error(rc::kKeyNotFound, "the blob is encrypted with a migration key but none is configured");
        if (auto k = check_key_size(*migration_key, hdr->flags & kFlagMigration256, "migration"); !k) return k.error();
        auto d = decrypt_from_tlvs(*migration_key, tlvs, kTagEncryptedMigrationData, kTagIvEncryptedMigrationData);
        if (!d) return d.error();
        inner_owned = std::move(*d);
        inner = inner_owned.view();
    } else {
        // Accepted even when a migration key is configured, as swtpm does.
        auto m = find_tlv(tlvs, kTagMigrationData);
        if (!m) return make_error(rc::kFail, "the blob has no migration data record");
        inner = *m;
    }
    if ((hdr->flags & kFlagEncrypted) || (request_flags & kStateFlagEncrypted)) {
        if (!state_key)
            return make_error(rc::kKeyNotFound, "the blob is encrypted with a state key but none is configured");
        if (auto k = check_key_size(*state_key, hdr->flags & kFlagEncrypted256, "state"); !k) return k.error();
        return decrypt_from_tlvs(*state_key, inner, kTagEncryptedData, kTagIvEncryptedData);
    }
    auto data = find_tlv(inner, kTagData);
    if (!data) return make_error(rc::kFail, "the blob has no data record");
    return SecureBytes(*data);
}

}  // namespace vtpm::store
