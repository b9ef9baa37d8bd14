// protoc-gen-slipstream: a protoc plugin that writes, for every service of a .proto file, a
// typed server base class and a client stub over the Slipstream RPC core (src/rpc/typed.h).
//
//   protoc --plugin=protoc-gen-slipstream=PATH --slipstream_out=DIR foo.proto
//
// writes DIR/foo.slip.h next to protoc's own foo.pb.h. For `service KeyValue` in package
// `kv` it declares kv::KeyValue::Service (override its virtual methods) and kv::KeyValue::Stub.
//
// The parameter `namespace=NAME` (--slipstream_opt=namespace=NAME) puts them in kv::NAME
// instead, so that a program can also hold gRPC's generated kv::KeyValue for the same file.
#include <google/protobuf/compiler/code_generator.h>
#include <google/protobuf/compiler/plugin.h>
#include <google/protobuf/descriptor.h>
#include <google/protobuf/io/printer.h>
#include <google/protobuf/io/zero_copy_stream.h>

#include <map>
#include <memory>
#include <string>

namespace {

using google::protobuf::Descriptor;
using google::protobuf::FileDescriptor;
using google::protobuf::MethodDescriptor;
using google::protobuf::ServiceDescriptor;
using google::protobuf::compiler::GeneratorContext;
using google::protobuf::io::Printer;

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  for (std::size_t pos = 0; (pos = s.find(from, pos)) != std::string::npos; pos += to.size()) s.replace(pos, from.size(), to);
  return s;
}

std::string strip_proto(const std::string& name) {
  return name.size() > 6 && name.compare(name.size() - 6, 6, ".proto") == 0 ? name.substr(0, name.size() - 6) : name;
}

// "::pkg::sub::Outer_Inner", as protoc's C++ generator names message classes.
std::string cpp_type(const Descriptor* d) {
  const std::string& pkg = d->file()->package();
  std::string rel = d->full_name();
  if (!pkg.empty()) rel = rel.substr(pkg.size() + 1);
  std::string ns = pkg.empty() ? "" : "::" + replace_all(pkg, ".", "::");
  return ns + "::" + replace_all(rel, ".", "_");
}

void generate_service(const ServiceDescriptor* svc, Printer& p) {
  p.Print("// service $full$\n", "full", svc->full_name());
  p.Print("class $name$ final {\n public:\n", "name", svc->name());
  p.Indent();
  p.Print("static constexpr const char* kServiceName = \"$full$\";\n\n", "full", svc->full_name());

  // Server base class.
  p.Print("// Override the methods this server implements; the others answer UNIMPLEMENTED.\n");
  p.Print("class Service : public ::slip::rpc::Service {\n public:\n");
  p.Indent();
  p.Print("Service() : ::slip::rpc::Service(kServiceName) {\n");
  p.Indent();
  for (int i = 0; i < svc->method_count(); ++i) {
    const MethodDescriptor* m = svc->method(i);
    std::map<std::string, std::string> v{{"m", m->name()},
                                         {"req", cpp_type(m->input_type())},
                                         {"resp", cpp_type(m->output_type())}};
    if (!m->client_streaming() && !m->server_streaming()) {
      p.Print(v,
              "::slip::rpc::add_unary_method<$req$, $resp$>(*this, \"$m$\",\n"
              "    [this](::slip::rpc::ServerCall& c, const $req$& q, $resp$* r) { return $m$(c, q, r); });\n");
    } else if (!m->client_streaming()) {
      p.Print(v,
              "::slip::rpc::add_server_streaming_method<$req$, $resp$>(*this, \"$m$\",\n"
              "    [this](::slip::rpc::ServerCall& c, const $req$& q, ::slip::rpc::ServerWriter<$resp$>& w) {\n"
              "      return $m$(c, q, w);\n"
              "    });\n");
    } else {
      v["kind"] = m->server_streaming() ? "kBidiStreaming" : "kClientStreaming";
      p.Print(v,
              "::slip::rpc::add_streaming_method<$req$, $resp$>(*this, \"$m$\", ::slip::rpc::MethodKind::$kind$,\n"
              "    [this](std::shared_ptr<::slip::rpc::ServerStream<$req$, $resp$>> s) { $m$(std::move(s)); });\n");
    }
  }
  p.Outdent();
  p.Print("}\n\n");
  for (int i = 0; i < svc->method_count(); ++i) {
    const MethodDescriptor* m = svc->method(i);
    std::map<std::string, std::string> v{{"m", m->name()},
                                         {"req", cpp_type(m->input_type())},
                                         {"resp", cpp_type(m->output_type())},
                                         {"full", svc->full_name()}};
    if (!m->client_streaming() && !m->server_streaming()) {
      p.Print(v,
              "virtual ::slip::Status $m$(::slip::rpc::ServerCall&, const $req$&, $resp$*) {\n"
              "  return ::slip::Status(::slip::StatusCode::kUnimplemented, \"$full$.$m$ is not implemented\");\n"
              "}\n");
    } else if (!m->client_streaming()) {
      p.Print(v,
              "virtual ::slip::Status $m$(::slip::rpc::ServerCall&, const $req$&, ::slip::rpc::ServerWriter<$resp$>&) {\n"
              "  return ::slip::Status(::slip::StatusCode::kUnimplemented, \"$full$.$m$ is not implemented\");\n"
              "}\n");
    } else {
      p.Print(v,
              "// Read with stream->on_read(...); end with stream->finish(...).\n"
              "virtual void $m$(std::shared_ptr<::slip::rpc::ServerStream<$req$, $resp$>> stream) {\n"
              "  stream->finish(::slip::Status(::slip::StatusCode::kUnimplemented, \"$full$.$m$ is not implemented\"));\n"
              "}\n");
    }
  }
  p.Outdent();
  p.Print("};\n\n");

  // Client stub.
  p.Print("// Blocking client calls; `channel` must outlive the stub. Any thread but the channel's.\n");
  p.Print("class Stub {\n public:\n");
  p.Indent();
  p.Print("explicit Stub(::slip::rpc::ChannelInterface& channel) : channel_(channel) {}\n\n");
  for (int i = 0; i < svc->method_count(); ++i) {
    const MethodDescriptor* m = svc->method(i);
    std::map<std::string, std::string> v{{"m", m->name()},
                                         {"req", cpp_type(m->input_type())},
                                         {"resp", cpp_type(m->output_type())},
                                         {"path", "/" + svc->full_name() + "/" + m->name()}};
    if (!m->client_streaming() && !m->server_streaming()) {
      p.Print(v,
              "::slip::Status $m$(const $req$& request, $resp$* response, const ::slip::rpc::CallOptions& options = {},\n"
              "    ::slip::rpc::Metadata* trailers = nullptr) {\n"
              "  return ::slip::rpc::unary_call(channel_, \"$path$\", request, response, options, trailers);\n"
              "}\n");
    } else if (!m->client_streaming()) {
      p.Print(v,
              "std::unique_ptr<::slip::rpc::ClientReader<$resp$>> $m$(const $req$& request,\n"
              "    const ::slip::rpc::CallOptions& options = {}) {\n"
              "  return ::slip::rpc::server_streaming_call<$req$, $resp$>(channel_, \"$path$\", request, options);\n"
              "}\n");
    } else if (!m->server_streaming()) {
      p.Print(v,
              "std::unique_ptr<::slip::rpc::ClientWriter<$req$, $resp$>> $m$(const ::slip::rpc::CallOptions& options = {}) {\n"
              "  return ::slip::rpc::client_streaming_call<$req$, $resp$>(channel_, \"$path$\", options);\n"
              "}\n");
    } else {
      p.Print(v,
              "std::unique_ptr<::slip::rpc::ClientReaderWriter<$req$, $resp$>> $m$(\n"
              "    const ::slip::rpc::CallOptions& options = {}) {\n"
              "  return ::slip::rpc::bidi_streaming_call<$req$, $resp$>(channel_, \"$path$\", options);\n"
              "}\n");
    }
  }
  p.Outdent();
  p.Print("\n private:\n  ::slip::rpc::ChannelInterface& channel_;\n};\n");
  p.Outdent();
  p.Print("};\n\n");
}

class Generator final : public google::protobuf::compiler::CodeGenerator {
 public:
  bool Generate(const FileDescriptor* file, const std::string& parameter, GeneratorContext* context,
                std::string* error) const override {
    if (file->service_count() == 0) return true;
    std::string nested;
    if (!parameter.empty()) {
      if (parameter.rfind("namespace=", 0) != 0 || parameter.size() == 10) {
        *error = "unknown parameter '" + parameter + "' (known: namespace=NAME)";
        return false;
      }
      nested = parameter.substr(10);
    }
    const std::string base = strip_proto(file->name());
    std::unique_ptr<google::protobuf::io::ZeroCopyOutputStream> out(context->Open(base + ".slip.h"));
    Printer p(out.get(), '$');
    p.Print("// Generated by protoc-gen-slipstream from $file$. Do not edit.\n", "file", file->name());
    p.Print("#pragma once\n\n#include <memory>\n\n#include \"$base$.pb.h\"\n#include \"rpc/typed.h\"\n\n", "base", base);
    std::string ns = replace_all(file->package(), ".", "::");
    if (!nested.empty()) ns += (ns.empty() ? "" : "::") + nested;
    if (!ns.empty()) p.Print("namespace $ns$ {\n\n", "ns", ns);
    for (int i = 0; i < file->service_count(); ++i) generate_service(file->service(i), p);
    if (!ns.empty()) p.Print("}  // namespace $ns$\n", "ns", ns);
    if (p.failed()) {
      *error = "failed to write " + base + ".slip.h";
      return false;
    }
    return true;
  }
};

}  // namespace

int main(int argc, char* argv[]) {
  Generator g;
  return google::protobuf::compiler::PluginMain(argc, argv, &g);
}
