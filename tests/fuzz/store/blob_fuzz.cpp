// Fuzz every parser of state bytes that may come from a peer or a disk:
// blob header, TLVs, state files and migration blobs, with and without keys.
#include "store/blob.hpp"
#include "store/state_file.hpp"

namespace {
const vtpm::store::Key& key(size_t n) {
    static const vtpm::store::Key k16{vtpm::SecureBytes(vtpm::ByteView(vtpm::Bytes(16, 0x42)))};
    static const vtpm::store::Key k32{vtpm::SecureBytes(vtpm::ByteView(vtpm::Bytes(32, 0x42)))};
    return n == 16 ? k16 : k32;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    using namespace vtpm::store;
    vtpm::ByteView in(data, size);
    (void)parse_header(in);
    for (uint16_t tag = 1; tag <= 7; ++tag) (void)find_tlv(in, tag);
    const Key* keys[] = {nullptr, &key(16), &key(32)};
    for (const Key* s : keys) {
        (void)decode_state_file(in, s);
        for (const Key* m : keys)
            for (uint32_t flags : {0u, 2u}) (void)decode_migration_blob(in, flags, s, m);
    }
    return 0;
}
