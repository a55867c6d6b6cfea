-- wrk: each connection waits this long after an answer before asking again (a board refreshing)
function delay()
    return 50
end
