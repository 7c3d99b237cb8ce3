# scholar_isolated_object(<target> <source> <entry-symbols> [compile options...])
#
# Compiles <source> with its own flags (for example -mavx512f) and adds it to <target> as one
# relocatable object in which every symbol except <entry-symbols> (one name, or a list in one
# quoted argument) is local. Inline functions and
# template instantiations compiled with wider instruction sets then cannot be merged by the linker
# with the same functions compiled for the baseline, which would crash older CPUs (or slow down
# newer ones). Needs the GNU toolchain's ld -r and objcopy.
function(scholar_isolated_object target source entry)
  get_filename_component(name "${source}" NAME_WE)
  set(objlib ${target}_iso_${name})
  add_library(${objlib} OBJECT "${source}")
  # -fno-gnu-unique: static locals of inline functions become weak symbols, which objcopy can make
  # local (GNU "unique" symbols it cannot). Clang never emits unique symbols.
  target_compile_options(${objlib} PRIVATE ${ARGN} $<$<CXX_COMPILER_ID:GNU>:-fno-gnu-unique>)
  set_target_properties(${objlib} PROPERTIES POSITION_INDEPENDENT_CODE ON CXX_EXTENSIONS OFF)
  target_compile_features(${objlib} PRIVATE cxx_std_20)
  # The library's own include directories and definitions; third-party headers as system headers.
  target_include_directories(${objlib} PRIVATE
    "${PROJECT_SOURCE_DIR}/include" "${PROJECT_BINARY_DIR}/include" "${PROJECT_SOURCE_DIR}/src")
  target_include_directories(${objlib} SYSTEM PRIVATE ${SCHOLAR_XSIMD_INCLUDE})
  target_link_libraries(${objlib} PRIVATE Eigen3::Eigen)
  target_compile_definitions(${objlib} PRIVATE
    $<TARGET_PROPERTY:${target},COMPILE_DEFINITIONS>)
  scholar_set_warnings(${objlib})

  set(keep ${entry})
  list(TRANSFORM keep PREPEND "--keep-global-symbol=")
  set(dir "${CMAKE_CURRENT_BINARY_DIR}/isolated")
  set(merged "${dir}/${name}.o")
  add_custom_command(
    OUTPUT "${merged}"
    COMMAND ${CMAKE_COMMAND} -E make_directory "${dir}"
    COMMAND ${CMAKE_LINKER} -r -o "${dir}/${name}.all.o" $<TARGET_OBJECTS:${objlib}>
    # Dropping the COMDAT groups keeps the final link from discarding these copies in favour of
    # same-named groups elsewhere.
    COMMAND ${CMAKE_OBJCOPY} ${keep} --remove-section=.group
            "${dir}/${name}.all.o" "${merged}"
    DEPENDS ${objlib} $<TARGET_OBJECTS:${objlib}>
    COMMAND_EXPAND_LISTS VERBATIM
    COMMENT "Isolating the symbols of ${name}")
  set_source_files_properties("${merged}" PROPERTIES EXTERNAL_OBJECT TRUE GENERATED TRUE)
  target_sources(${target} PRIVATE "${merged}")
endfunction()
