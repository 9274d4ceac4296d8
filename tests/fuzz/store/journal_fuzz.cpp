// Fuzz the permanent-state journal as read from disk: arbitrary bytes as
// the journal file, parsed as the directory store does at opening, and
// every record decoded against the header's epoch. A crafted slot size or
// record length must never reach past the file.
#include <cstddef>
#include <cstdint>

#include "store/journal_format.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    using namespace vtpm::store;
    const vtpm::ByteView file(data, size);
    auto v = journal::parse(file);
    if (v && v->latest) {
        // The newest record re-encodes to the bytes it came from.
        vtpm::Bytes again = journal::encode_record(v->latest->epoch, v->latest->seq, v->latest->data);
        if (again.size() != journal::kRecordHeader + v->latest->data.size()) __builtin_trap();
    }
    if (size >= journal::kRecordHeader) (void)journal::decode_record(file, size % 5);
    return 0;
}
