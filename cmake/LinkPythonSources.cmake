# cmake -DSOURCE=<python/ringfetch> -DDEST=<build>/python/ringfetch -P LinkPythonSources.cmake
# Makes DEST a whole package next to the compiled module: a symbolic link for each entry of SOURCE (so edits to
# the pure-Python files need no rebuild) and removal of links whose source entry is gone.
file(MAKE_DIRECTORY ${DEST})
file(GLOB entries RELATIVE ${SOURCE} ${SOURCE}/*)
foreach(entry IN LISTS entries)
  if(entry STREQUAL "__pycache__")
    continue()
  endif()
  if(NOT IS_SYMLINK ${DEST}/${entry})
    file(REMOVE_RECURSE ${DEST}/${entry})  # a copy left by an older build
    file(CREATE_LINK ${SOURCE}/${entry} ${DEST}/${entry} SYMBOLIC)
  endif()
endforeach()
file(GLOB links RELATIVE ${DEST} ${DEST}/*)
foreach(link IN LISTS links)
  if(IS_SYMLINK ${DEST}/${link} AND NOT EXISTS ${SOURCE}/${link})
    file(REMOVE ${DEST}/${link})
  endif()
endforeach()
