// Server key files and public key text (src/transport/udp/keys.h).
#include "transport/udp/keys.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>

namespace slip::transport::udp {
namespace {

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/slip-udp-keys-XXXXXX";
    const char* d = ::mkdtemp(tmpl);
    EXPECT_NE(d, nullptr);
    path_ = d ? d : "/tmp";
  }
  ~TempDir() {
    for (const char* f : {"/server.key", "/loose.key", "/bad.key"}) ::unlink((path_ + f).c_str());
    ::rmdir(path_.c_str());
  }
  std::string file(const char* name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

TEST(UdpKeys, SavesWithMode0600AndLoadsTheSamePair) {
  TempDir dir;
  const KeyPair k = KeyPair::generate();
  const std::string path = dir.file("server.key");
  ASSERT_TRUE(save_private_key(path, k).is_ok());
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  Result<KeyPair> back = load_private_key(path);
  ASSERT_TRUE(back.is_ok()) << back.status().to_string();
  EXPECT_EQ(back->private_key, k.private_key);
  EXPECT_EQ(back->public_key, k.public_key);
  // Never overwritten.
  EXPECT_EQ(save_private_key(path, KeyPair::generate()).code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(load_private_key(path)->public_key, k.public_key);
}

TEST(UdpKeys, RefusesAKeyFileOthersCanRead) {
  TempDir dir;
  const std::string path = dir.file("loose.key");
  ASSERT_TRUE(save_private_key(path, KeyPair::generate()).is_ok());
  ASSERT_EQ(::chmod(path.c_str(), 0644), 0);
  const Result<KeyPair> r = load_private_key(path);
  EXPECT_EQ(r.status().code(), StatusCode::kPermissionDenied);
  EXPECT_NE(r.status().message().find("0644"), std::string_view::npos) << r.status().to_string();
  EXPECT_EQ(load_private_key(dir.file("missing.key")).status().code(), StatusCode::kNotFound);
}

TEST(UdpKeys, ParsesKeyFileText) {
  const std::string hex = "4a3acbfdb163dec651dfa3194dece676d437029c62a408b4c5ea9114246e4893";
  Result<KeyPair> k = parse_private_key_file("# server key\n\n" + hex + "\n");
  ASSERT_TRUE(k.is_ok()) << k.status().to_string();
  // The public key of this private key, from the Noise test vectors.
  EXPECT_EQ(format_public_key(k->public_key), "31e0303fd6418d2f8c0e78b91f22e8caed0fbe48656dcf4767e4834f701b8f62");
  EXPECT_FALSE(parse_private_key_file("").is_ok());
  EXPECT_FALSE(parse_private_key_file(hex + "\n" + hex + "\n").is_ok());
  EXPECT_FALSE(parse_private_key_file(hex.substr(1)).is_ok());
  EXPECT_FALSE(parse_private_key_file(hex + "0").is_ok());
  EXPECT_FALSE(parse_private_key_file("g" + hex.substr(1)).is_ok());
}

TEST(UdpKeys, PublicKeyTextRoundTrips) {
  const KeyPair k = KeyPair::generate();
  const std::string text = format_public_key(k.public_key);
  EXPECT_EQ(text.size(), 64u);
  Result<PublicKey> back = parse_public_key("  " + text + "\n");
  ASSERT_TRUE(back.is_ok());
  EXPECT_EQ(*back, k.public_key);
  std::string upper = text;
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  EXPECT_EQ(*parse_public_key(upper), k.public_key);
  EXPECT_FALSE(parse_public_key(text.substr(2)).is_ok());
  EXPECT_FALSE(parse_public_key(text + "00").is_ok());
  EXPECT_FALSE(parse_public_key("zz" + text.substr(2)).is_ok());
  EXPECT_FALSE(parse_public_key("").is_ok());
}

}  // namespace
}  // namespace slip::transport::udp
