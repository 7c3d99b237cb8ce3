// Memory-mapped reads and atomic (temp + fsync + rename) writes.
#include "scholar/io/file.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>

#include "scholar/error.hpp"

namespace scholar::io {

namespace {
std::string errno_text() {
  return std::strerror(errno);
}
}  // namespace

std::shared_ptr<MappedFile> MappedFile::open(const std::string& path, FileAccess access) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail<IoError>(path, ": cannot open: ", errno_text());
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const std::string e = errno_text();
    ::close(fd);
    fail<IoError>(path, ": cannot stat: ", e);
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    fail<IoError>(path, ": not a regular file");
  }
  std::shared_ptr<MappedFile> f(new MappedFile());
  f->path_ = path;
  f->size_ = static_cast<size_t>(st.st_size);
  f->access_ = access;
  if (f->size_ > 0 && access == FileAccess::map) {
    void* p = ::mmap(nullptr, f->size_, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      const std::string e = errno_text();
      ::close(fd);
      fail<IoError>(path, ": cannot map ", f->size_, " bytes: ", e);
    }
    f->data_ = static_cast<uint8_t*>(p);
    f->region_ = p;
    f->region_size_ = f->size_;
  } else if (f->size_ > 0) {
    // Anonymous memory starting on a 2 MiB boundary, so that the kernel can back it with huge
    // pages, then the file read into it.
    constexpr size_t kHuge = size_t{2} << 20;
    const size_t reserve = (f->size_ + 2 * kHuge - 1) / kHuge * kHuge;
    void* p = ::mmap(nullptr, reserve, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
      const std::string e = errno_text();
      ::close(fd);
      fail<IoError>(path, ": cannot allocate ", f->size_, " bytes to read it into: ", e);
    }
    f->region_ = p;
    f->region_size_ = reserve;
    const auto base = reinterpret_cast<uintptr_t>(p);
    f->data_ = reinterpret_cast<uint8_t*>((base + kHuge - 1) / kHuge * kHuge);
#ifdef MADV_HUGEPAGE
    ::madvise(f->data_, (f->size_ + kHuge - 1) / kHuge * kHuge, MADV_HUGEPAGE);  // a hint only
#endif
    size_t done = 0;
    while (done < f->size_) {
      const ssize_t n = ::read(fd, f->data_ + done, f->size_ - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        const std::string e = n < 0 ? errno_text() : std::string("unexpected end of file");
        ::close(fd);
        fail<IoError>(path, ": cannot read byte ", done, " of ", f->size_, ": ", e);
      }
      done += static_cast<size_t>(n);
    }
  }
  ::close(fd);  // the mapping stays valid
  return f;
}

MappedFile::~MappedFile() {
  if (region_) ::munmap(region_, region_size_);
}

AtomicFile::AtomicFile(std::string path) : path_(std::move(path)) {
  static std::atomic<unsigned> counter{0};
  temp_ = path_ + ".tmp-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
  fd_ = ::open(temp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0) fail<IoError>(path_, ": cannot create temporary file ", temp_, ": ", errno_text());
}

AtomicFile::~AtomicFile() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_) ::unlink(temp_.c_str());
}

void AtomicFile::write(const void* data, size_t size) {
  if (fd_ < 0) fail<IoError>(path_, ": write after commit");
  const auto* p = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t n = ::write(fd_, p, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail<IoError>(path_, ": cannot write to ", temp_, ": ", errno_text());
    }
    p += n;
    size -= static_cast<size_t>(n);
  }
}

void AtomicFile::commit() {
  if (fd_ < 0) fail<IoError>(path_, ": commit called twice");
  if (::fsync(fd_) != 0) fail<IoError>(path_, ": cannot flush ", temp_, ": ", errno_text());
  const int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0) fail<IoError>(path_, ": cannot close ", temp_, ": ", errno_text());
  if (::rename(temp_.c_str(), path_.c_str()) != 0)
    fail<IoError>(path_, ": cannot rename ", temp_, " into place: ", errno_text());
  committed_ = true;
}

std::string read_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail<IoError>(path, ": cannot open: ", errno_text());
  std::string out;
  char buf[1 << 16];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      const std::string e = errno_text();
      ::close(fd);
      fail<IoError>(path, ": cannot read: ", e);
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

void write_file_atomic(const std::string& path, std::string_view data) {
  AtomicFile f(path);
  f.write(data);
  f.commit();
}

}  // namespace scholar::io
