#include "runtime/model/zip_archive.hpp"

#include <zip.h>

#include <memory>

#include "runtime/memory_guard.hpp"
#include "tconv3d/error.hpp"

namespace tconv3d::model {
namespace {

struct ArchiveCloser {
  void operator()(zip_t* archive) const { zip_discard(archive); }
};
struct MemberCloser {
  void operator()(zip_file_t* file) const { zip_fclose(file); }
};

std::string zip_problem(zip_error_t* error) {
  const char* text = zip_error_strerror(error);
  return text ? text : "unknown zip error";
}

}  // namespace

std::map<std::string, std::string> read_zip_members(const std::string& bytes, const std::string& name) {
  zip_error_t error;
  zip_error_init(&error);
  if (bytes.size() < 22) throw Error(name, "not a zip archive (too short)");
  zip_source_t* source = zip_source_buffer_create(bytes.data(), bytes.size(), 0, &error);
  if (!source) {
    const std::string problem = zip_problem(&error);
    zip_error_fini(&error);
    throw Error(name, "cannot read as zip: " + problem);
  }
  std::unique_ptr<zip_t, ArchiveCloser> archive(zip_open_from_source(source, ZIP_RDONLY | ZIP_CHECKCONS, &error));
  if (!archive) {
    zip_source_free(source);
    const std::string problem = zip_problem(&error);
    zip_error_fini(&error);
    throw Error(name, "not a readable zip archive (" + problem + ")");
  }
  zip_error_fini(&error);
  const zip_int64_t count = zip_get_num_entries(archive.get(), 0);
  if (count < 0 || count > 100000) throw Error(name, "zip archive has an unreadable member count");
  std::map<std::string, std::string> members;
  double total = 0;  // all members stay in memory together
  for (zip_int64_t i = 0; i < count; ++i) {
    zip_stat_t st;
    zip_stat_init(&st);
    if (zip_stat_index(archive.get(), static_cast<zip_uint64_t>(i), 0, &st) != 0 || !(st.valid & ZIP_STAT_NAME) ||
        !(st.valid & ZIP_STAT_SIZE)) {
      throw Error(name, "zip member " + std::to_string(i) + " is unreadable");
    }
    const std::string member = st.name;
    if (member.empty() || member.back() == '/') continue;  // a directory entry
    // Deflate cannot expand more than ~1032x; a larger claim is a lie or a bomb.
    if ((st.valid & ZIP_STAT_COMP_SIZE) && st.size > 1100 * (st.comp_size + 1))
      throw Error(name, "zip member '" + member + "' claims an impossible size " + std::to_string(st.size));
    total += double(st.size);
    check_allocatable(total, name + ":" + member);
    std::unique_ptr<zip_file_t, MemberCloser> file(zip_fopen_index(archive.get(), static_cast<zip_uint64_t>(i), 0));
    if (!file) throw Error(name, "cannot open zip member '" + member + "': " + zip_strerror(archive.get()));
    std::string content(st.size, '\0');
    zip_uint64_t done = 0;
    while (done < st.size) {
      const zip_int64_t got = zip_fread(file.get(), content.data() + done, st.size - done);
      if (got < 0) {
        throw Error(name, "zip member '" + member + "' is corrupt: " + zip_file_strerror(file.get()));
      }
      if (got == 0) break;
      done += static_cast<zip_uint64_t>(got);
    }
    if (done != st.size) throw Error(name, "zip member '" + member + "' is truncated");
    // Reading past the end makes libzip verify the CRC.
    char extra;
    if (zip_fread(file.get(), &extra, 1) != 0)
      throw Error(name, "zip member '" + member + "' is corrupt: " + zip_file_strerror(file.get()));
    members.emplace(member, std::move(content));
  }
  return members;
}

}  // namespace tconv3d::model
