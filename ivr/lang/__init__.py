"""Language knowledge shared by the flow layer, the speech engines and the `ivr call` tool.

`normalize`: text as words to compare (phrase matching); `numbers`: number words, their parsing
and the say-as filters; `spoken`: text as a recogniser says it (numbers spelled out);
`grammars`: the neutral `Grammar` that engines accept and each language's built-in grammars.
Nothing here imports the flow layer or an engine.
"""
