"""A parser and editor of QEMU 7.2's migration stream (migration/savevm.c,
migration/ram.c), enough to build the attack the final verification stops:
an extra `ram` section placed after the tpm-emulator section, which QEMU
loads after the bridge checked guest RAM at SET_STATEBLOB.

Stream: be32 QEMU_VM_FILE_MAGIC, be32 version 3, QEMU_VM_CONFIGURATION
(u32 length + machine name, then subsections), sections until QEMU_VM_EOF,
then the vmdesc JSON (QEMU_VM_VMDESCRIPTION, be32 length, text). Sections:
START/FULL = type, be32 section id, u8 length + idstr, be32 instance,
be32 version, data; PART/END = type, be32 section id, data; each followed
by a footer (0x7e, be32 section id). `ram` data is a list of page records:
be64 (offset | RAM_SAVE_FLAG_*), the block name (u8 length + name) unless
CONTINUE reuses the last one, then the page (PAGE: 4096 bytes, ZERO: one
fill byte), up to EOS. Device (FULL) sections are not parsed field by field:
their end is the footer carrying their section id that is followed by the
next section's header; the tpm-emulator section (three u32 flags, u32
length, blob triples) is parsed exactly and checked against its footer.

A libvirt save image has a header before the QEMU stream (virQEMUSaveHeader:
16-byte magic "LibvirtQemudSave", u32 version, u32 XML length, u32
was_running, u32 compressed, u32 cookie offset, 14 unused u32, all little
endian; then the XML): kept as is, the stream after it is edited."""
import re
import struct

MAGIC, VERSION = 0x5145564D, 3
EOF, START, PART, END, FULL, SUBSECTION, VMDESC, CONFIG, FOOTER = 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x7E
F_ZERO, F_MEM_SIZE, F_PAGE, F_EOS, F_CONTINUE, F_HOOK = 0x02, 0x04, 0x08, 0x10, 0x20, 0x80
PAGE = 4096
LIBVIRT_MAGIC = b"LibvirtQemudSave"
LIBVIRT_HEADER = 16 + 19 * 4


class StreamError(ValueError):
    pass


class Reader:
    def __init__(self, data, pos=0):
        self.data, self.pos = data, pos

    def take(self, n):
        if self.pos + n > len(self.data):
            raise StreamError(f"stream ends at {len(self.data)}, wanted {n} bytes at {self.pos}")
        b = self.data[self.pos:self.pos + n]
        self.pos += n
        return b

    def u8(self):
        return self.take(1)[0]

    def u32(self):
        return struct.unpack(">I", self.take(4))[0]

    def u64(self):
        return struct.unpack(">Q", self.take(8))[0]

    def name(self):
        return self.take(self.u8()).decode("latin-1")


class Section:
    def __init__(self, kind, sid, start, end, idstr=None):
        self.kind, self.sid, self.start, self.end, self.idstr = kind, sid, start, end, idstr
        self.pages = []  # ram: (block, offset, position of the page data in the stream)


class Stream:
    """A parsed stream: `prefix` (a libvirt header, or nothing), the
    sections in stream order, and where the EOF marker is."""

    def __init__(self, data):
        self.data = bytes(data)
        self.base = 0
        if self.data.startswith(LIBVIRT_MAGIC):
            xml_len = struct.unpack_from("<I", self.data, 20)[0]
            self.base = LIBVIRT_HEADER + xml_len
        r = Reader(self.data, self.base)
        if r.u32() != MAGIC:
            raise StreamError(f"no QEMU_VM_FILE_MAGIC at offset {self.base}")
        if r.u32() != VERSION:
            raise StreamError("not a version 3 stream")
        self.sections = []
        self.ram_ids = {}  # section id -> "ram"
        self.names = {}    # section id -> idstr
        self._last_block = None
        if self.data[r.pos] == CONFIG:
            r.u8()
            self._configuration(r)
        while True:
            kind = r.u8()
            if kind == EOF:
                self.eof = r.pos - 1
                break
            self._section(r, kind)
        self.vmdesc = self.data[self.eof + 1:]

    @staticmethod
    def _configuration(r):
        r.take(r.u32())  # the machine type
        while r.data[r.pos] == SUBSECTION:
            r.u8()
            name = r.name()
            r.u32()  # version
            if name == "configuration/target-page-bits":
                r.u32()
            elif name == "configuration/capabilities":
                for _ in range(r.u32()):
                    r.name()
            elif name == "configuration/uuid":
                r.take(16)
            else:
                raise StreamError(f"unknown configuration subsection {name}")

    def _section(self, r, kind):
        start = r.pos - 1
        sid = r.u32()
        idstr = None
        if kind in (START, FULL):
            idstr = r.name()
            r.u32()  # instance
            r.u32()  # version
            self.names[sid] = idstr
        elif kind in (PART, END):
            idstr = self.names.get(sid)
        else:
            raise StreamError(f"unexpected section type {kind:#x} at {start}")
        s = Section(kind, sid, start, None, idstr)
        if idstr == "ram":
            self._ram(r, s)
            self._footer(r, sid)
        elif idstr == "tpm-emulator":
            for _ in range(3):
                r.u32()  # flags
                r.take(r.u32())
            self._footer(r, sid)
        elif kind == FULL:
            r.pos = self._device_end(r.pos, sid)
        else:
            raise StreamError(f"iterable section {idstr!r} is not understood")
        s.end = r.pos
        self.sections.append(s)

    @staticmethod
    def _footer(r, sid):
        if r.u8() != FOOTER or r.u32() != sid:
            raise StreamError(f"section {sid}: no footer where expected ({r.pos})")

    def _device_end(self, pos, sid):
        """The end of a device section: its footer, then the next section's
        header (or EOF)."""
        foot = bytes([FOOTER]) + struct.pack(">I", sid)
        nxt = re.compile(rb"\x04....[\x01-\x7f][\x20-\x7e]|\x00\x06|\x00$", re.S)
        while True:
            at = self.data.find(foot, pos)
            if at < 0:
                raise StreamError(f"section {sid}: no footer")
            end = at + 5
            m = nxt.match(self.data, end)
            if m and (self.data[end] != FULL or self._plausible_header(end)):
                return end
            pos = at + 1

    def _plausible_header(self, at):
        n = self.data[at + 5]
        name = self.data[at + 6:at + 6 + n]
        return len(name) == n and all(0x20 <= c < 0x7f for c in name)

    def _ram(self, r, s):
        while True:
            v = r.u64()
            flags, addr = v & (PAGE - 1), v & ~(PAGE - 1)
            if flags & F_EOS:
                return
            if flags & F_MEM_SIZE:
                total = addr
                while total:
                    r.name()
                    total -= r.u64()
                continue
            if flags & F_HOOK:
                raise StreamError("RAM_SAVE_FLAG_HOOK (RDMA) is not understood")
            if flags & F_CONTINUE:
                block = self._last_block
            else:
                block = self._last_block = r.name()
            if flags & F_ZERO:
                r.u8()
            elif flags & F_PAGE:
                s.pages.append((block, addr, r.pos))
                r.take(PAGE)
            else:
                raise StreamError(f"RAM flags {flags:#x} are not understood")

    # ---- queries and edits

    def ram_section_id(self):
        for s in self.sections:
            if s.idstr == "ram":
                return s.sid
        raise StreamError("no ram section")

    def section(self, idstr):
        for s in self.sections:
            if s.idstr == idstr:
                return s
        raise StreamError(f"no {idstr} section")

    def find_page(self, needle):
        """(block, offset in the block, page bytes) of the first RAM page
        holding `needle`."""
        for s in self.sections:
            for block, addr, at in s.pages:
                page = self.data[at:at + PAGE]
                if needle in page:
                    return block, addr, page
        raise StreamError(f"{needle!r} is in no RAM page of the stream")

    def with_ram_section_after(self, idstr, block, addr, page):
        """The stream (with its libvirt header, if any) plus one `ram` PART
        section right after section `idstr` that writes `page` at `addr` of
        RAM block `block`."""
        assert len(page) == PAGE
        sid = self.ram_section_id()
        extra = bytearray([PART]) + struct.pack(">I", sid)
        name = block.encode("latin-1")
        extra += struct.pack(">Q", addr | F_PAGE) + bytes([len(name)]) + name + page
        extra += struct.pack(">Q", F_EOS) + bytes([FOOTER]) + struct.pack(">I", sid)
        at = self.section(idstr).end
        return self.data[:at] + bytes(extra) + self.data[at:]
