using Behemoth.Tests;
using Microsoft.Playwright;

namespace Behemoth.GlassesCompanion.Tests;

/// <summary>
/// The HUD page end to end in headless Chromium (Debian's /usr/bin/chromium; Playwright's driver ships in its NuGet
/// package, so nothing is downloaded): open it with the pairing token, submit phrases, see the streamed text and the
/// timings. With BEHEMOTH_UPDATE_SCREENSHOT=1 it saves the screenshot shown in README.md (docs/glasses-hud.png).
/// </summary>
[Collection(GlassesCollection.Name)]
public sealed class HudBrowserTests(PackageFixture package)
{
    private const string Chromium = "/usr/bin/chromium";

    [Fact]
    public async Task The_hud_streams_a_translation_and_an_answer_with_ttft_and_speed()
    {
        Assert.True(File.Exists(Chromium), $"{Chromium} is missing: install Debian's chromium package (apt-get install -y chromium), as .ci/run does");
        await using var host = await GlassesHost.StartOnAsync(package, "http://127.0.0.1:0", "--Glasses:RequirePairing", "true");

        using var playwright = await Playwright.CreateAsync();
        await using var browser = await playwright.Chromium.LaunchAsync(new() { ExecutablePath = Chromium, Headless = true, Args = ["--no-sandbox"] });
        var page = await browser.NewPageAsync(new() { ViewportSize = new() { Width = 760, Height = 440 } });
        // Waits end on the page's own events (data-done, the profile text); these limits only turn a hang into a
        // failure, far above Playwright's defaults (30 s, 5 s for expectations), which a loaded machine can exceed.
        page.SetDefaultTimeout(300_000);
        Assertions.SetDefaultExpectTimeout(300_000);
        await page.GotoAsync(new Uri(host.Address, "/?token=" + host.Pairing.Token).ToString());
        await Assertions.Expect(page.Locator("#profile")).ToHaveTextAsync("glasses");

        await page.SelectOptionAsync("#mode", "translate");
        await page.FillAsync("#text", "Good morning, how are you?");
        await page.ClickAsync("#send");
        await page.WaitForSelectorAsync("body[data-done='1']");
        string translation = await page.Locator("#lines p.answer").Last.InnerTextAsync();
        Assert.False(string.IsNullOrWhiteSpace(translation));
        Assert.Matches(@"^TTFT \d+ ms$", await page.Locator("#ttft").TextContentAsync() ?? "");
        Assert.Matches(@"^(\d+|—) tok/s$", await page.Locator("#speed").TextContentAsync() ?? "");
        Assert.Equal(1, host.Monitor.Completed);

        await page.SelectOptionAsync("#mode", "answer");
        await page.FillAsync("#text", "What is the capital of Italy?");
        await page.PressAsync("#text", "Enter");
        await page.WaitForSelectorAsync("body[data-done='2']");
        Assert.Equal("SHORT ANSWER", await page.Locator("#mode-label").TextContentAsync());
        Assert.Equal(2, host.Monitor.Completed);

        // the picture in README.md
        // BEHEMOTH_UPDATE_SCREENSHOT=1 refreshes the README's picture; otherwise the screenshot goes to a temporary file
        string shot = Environment.GetEnvironmentVariable("BEHEMOTH_UPDATE_SCREENSHOT") == "1"
            ? Path.Combine(TestPaths.RepoRoot, "docs", "glasses-hud.png")
            : Path.Combine(Path.GetTempPath(), $"glasses-hud-{Guid.NewGuid():N}.png");
        await page.ScreenshotAsync(new() { Path = shot });
        Assert.True(new FileInfo(shot).Length > 1000, "the screenshot is an image");
    }
}
