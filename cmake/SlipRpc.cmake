# slip_generate_rpc(TARGET <target> PROTOS <file.proto>... [IMPORT_DIRS <dir>...] [NAMESPACE <name>])
#
# Runs protoc with its C++ generator and protoc-gen-slipstream on each .proto, adds the
# generated foo.pb.cc / foo.pb.h / foo.slip.h to <target>, and links it with protobuf and the
# Slipstream RPC library. Each file's own folder is an import path. NAMESPACE puts the service
# classes in <package>::<name> (beside gRPC's generated classes of the same services).
function(slip_generate_rpc)
  cmake_parse_arguments(ARG "" "TARGET;NAMESPACE" "PROTOS;IMPORT_DIRS" ${ARGN})
  if(NOT ARG_TARGET OR NOT ARG_PROTOS)
    message(FATAL_ERROR "slip_generate_rpc: TARGET and PROTOS are required")
  endif()
  set(out_dir ${CMAKE_CURRENT_BINARY_DIR}/slip_rpc_gen/${ARG_TARGET})
  file(MAKE_DIRECTORY ${out_dir})
  set(import_args)
  foreach(dir IN LISTS ARG_IMPORT_DIRS)
    list(APPEND import_args --proto_path=${dir})
  endforeach()
  set(slip_out ${out_dir})
  if(ARG_NAMESPACE)
    set(slip_out "namespace=${ARG_NAMESPACE}:${out_dir}")
  endif()
  foreach(proto IN LISTS ARG_PROTOS)
    get_filename_component(abs ${proto} ABSOLUTE)
    get_filename_component(dir ${abs} DIRECTORY)
    get_filename_component(name ${abs} NAME_WE)
    set(outputs ${out_dir}/${name}.pb.cc ${out_dir}/${name}.pb.h ${out_dir}/${name}.slip.h)
    add_custom_command(
      OUTPUT ${outputs}
      COMMAND ${Protobuf_PROTOC_EXECUTABLE} --proto_path=${dir} ${import_args}
              --cpp_out=${out_dir}
              --plugin=protoc-gen-slipstream=$<TARGET_FILE:protoc-gen-slipstream>
              --slipstream_out=${slip_out} ${abs}
      DEPENDS ${abs} protoc-gen-slipstream
      COMMENT "protoc ${name}.proto (C++ and Slipstream RPC)"
      VERBATIM)
    # protoc's output is not held to the project's warning flags.
    set_source_files_properties(${out_dir}/${name}.pb.cc PROPERTIES COMPILE_OPTIONS "-w")
    target_sources(${ARG_TARGET} PRIVATE ${outputs})
  endforeach()
  target_include_directories(${ARG_TARGET} PUBLIC ${out_dir})
  target_link_libraries(${ARG_TARGET} PUBLIC protobuf::libprotobuf slipstream_internal)
endfunction()
